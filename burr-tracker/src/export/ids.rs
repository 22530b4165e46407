//! App ids as Burr's local tracking layout can hold them: each is a directory name and a
//! URL path segment of Burr's server, so `/` (in child app ids), `%`, `.` at the start
//! and other characters are escaped.

/// Whether `project` is a project name Burr accepts (letters, digits, `_`, `-`, `:`).
pub fn valid_project(project: &str) -> bool {
    !project.is_empty()
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'))
}

/// `app_id` as a directory name of the export: ASCII letters, digits, `-` and `_` are
/// kept, `.` too except first; every other byte is written `~XX` (upper-case hex), `~`
/// included, so different ids never share a name. A UUID is unchanged;
/// `run-1/3/doc%2F7` becomes `run-1~2F3~2Fdoc~252F7`.
pub fn burr_ui_id(app_id: &str) -> String {
    let mut out = String::with_capacity(app_id.len());
    for (i, byte) in app_id.bytes().enumerate() {
        let keep =
            byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("~{byte:02X}"));
        }
    }
    if out.is_empty() {
        out.push('~');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_kept_and_child_ids_escaped() {
        assert_eq!(
            burr_ui_id("3f1c2a9e-0b7d-4c1e-9a51-2f8d6e4b7c10"),
            "3f1c2a9e-0b7d-4c1e-9a51-2f8d6e4b7c10"
        );
        assert_eq!(burr_ui_id("run-1/3/doc%2F7"), "run-1~2F3~2Fdoc~252F7");
        assert_eq!(burr_ui_id(".hidden"), "~2Ehidden");
        assert_eq!(burr_ui_id("a~b"), "a~7Eb");
        assert_ne!(burr_ui_id("a/b"), burr_ui_id("a~2Fb"));
    }

    #[test]
    fn project_names_follow_burr() {
        assert!(valid_project("burr-rs"));
        assert!(valid_project("demo:counter"));
        assert!(!valid_project("my project"));
        assert!(!valid_project(""));
    }
}
