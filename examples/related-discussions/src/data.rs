//! The input: retrospective meetings whose voting ended, and the past discussions to relate
//! them to. A built-in sample ([`Dataset::sample`]), or a JSON file of the same shape
//! ([`Dataset::from_file`]; see `data/sample.json`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The first sample: three meetings and forty discussions from earlier ones (unlabelled).
const SAMPLE: &str = include_str!("../data/sample.json");
/// The labelled dataset (the default): 320 discussions of 32 meetings of 4 teams, each
/// labelled with one of 10 recurring themes.
const LABELLED: &str = include_str!("../data/retros.json");

/// Meetings to process and the past discussions to search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Retrospective meetings whose voting ended, oldest first: each meeting's past is
    /// [`past`](Self::past) and the discussions of the meetings before it.
    pub meetings: Vec<Meeting>,
    /// Discussions from meetings before all of these.
    #[serde(default)]
    pub past: Vec<PastDiscussion>,
    /// The evaluation labels' meanings (theme → description), if labelled.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub themes: std::collections::BTreeMap<String, String>,
}

/// One retrospective meeting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Meeting {
    /// Unique among the meetings; the application id is `meeting-<id>`.
    pub id: String,
    /// The team that held it (the application's partition key).
    pub team: String,
    /// Its title ("Sprint 42 retrospective").
    pub title: String,
    /// Its date (free text, e.g. `2026-11-14`).
    pub date: String,
    /// What was discussed, with the votes each got.
    pub discussions: Vec<Discussion>,
}

/// One discussion (a retro card and its notes) of a meeting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Discussion {
    /// Unique within its meeting: the key of its child application.
    pub id: String,
    /// Its title.
    pub title: String,
    /// What was said.
    pub notes: String,
    /// Votes it got (the most voted are related first).
    #[serde(default)]
    pub votes: u32,
    /// Its recurring theme: an evaluation label only, never used to relate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
}

/// A discussion from an earlier meeting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PastDiscussion {
    /// Unique among the past discussions.
    pub id: String,
    /// The team whose meeting it was.
    pub team: String,
    /// That meeting's title.
    pub meeting: String,
    /// That meeting's date.
    pub date: String,
    /// Its title.
    pub title: String,
    /// What was said.
    pub notes: String,
    /// Its recurring theme: an evaluation label only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
}

/// Why a dataset cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read data file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a dataset in JSON.
    #[error("data file {path} is not a dataset (see data/sample.json for the format)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Two items share an id.
    #[error("{what} id `{id}` is used twice")]
    DuplicateId {
        /// Which kind of item ("meeting", "past discussion", "discussion of meeting m1").
        what: String,
        /// The id.
        id: String,
    },
    /// An id or a text is empty.
    #[error("{what} has an empty {field}")]
    Empty {
        /// Which item.
        what: String,
        /// Which field.
        field: &'static str,
    },
    /// A meeting asked for is not in the dataset.
    #[error("no meeting `{id}` in the data (meetings: {known})")]
    UnknownMeeting {
        /// The id asked for.
        id: String,
        /// The ids there are, comma-separated.
        known: String,
    },
}

impl Dataset {
    /// The built-in labelled dataset (`data/retros.json`): 32 meetings of 4 teams, oldest
    /// first, 10 discussions each, each labelled with its theme.
    pub fn labelled() -> Dataset {
        // Part of the program, checked by a unit test: not user input.
        serde_json::from_str(LABELLED).expect("data/retros.json is a valid dataset")
    }

    /// The first sample (`data/sample.json`): 3 meetings (21 discussions) and 40 past
    /// discussions, unlabelled.
    pub fn sample() -> Dataset {
        // The sample is part of the program, checked by a unit test: not user input.
        serde_json::from_str(SAMPLE).expect("data/sample.json is a valid dataset")
    }

    /// A dataset from a JSON file shaped like `data/sample.json`, validated.
    pub fn from_file(path: &Path) -> Result<Dataset, DataError> {
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Read {
            path: path.to_owned(),
            source,
        })?;
        let data: Dataset = serde_json::from_str(&text).map_err(|source| DataError::Parse {
            path: path.to_owned(),
            source,
        })?;
        data.validate()?;
        Ok(data)
    }

    /// Check ids are unique and present and texts are not empty.
    pub fn validate(&self) -> Result<(), DataError> {
        unique("meeting", self.meetings.iter().map(|m| m.id.as_str()))?;
        unique("past discussion", self.past.iter().map(|p| p.id.as_str()))?;
        for meeting in &self.meetings {
            let what = format!("meeting `{}`", meeting.id);
            not_empty(&what, "id", &meeting.id)?;
            not_empty(&what, "team", &meeting.team)?;
            let scope = format!("discussion of meeting `{}`", meeting.id);
            unique(&scope, meeting.discussions.iter().map(|d| d.id.as_str()))?;
            for d in &meeting.discussions {
                let what = format!("discussion `{}` of meeting `{}`", d.id, meeting.id);
                not_empty(&what, "id", &d.id)?;
                not_empty(&what, "title", &d.title)?;
            }
        }
        for p in &self.past {
            let what = format!("past discussion `{}`", p.id);
            not_empty(&what, "id", &p.id)?;
            not_empty(&what, "title", &p.title)?;
        }
        Ok(())
    }

    /// Only the meetings with these ids, in the order given; all of them when `ids` is
    /// empty.
    pub fn select(mut self, ids: &[String]) -> Result<Dataset, DataError> {
        if ids.is_empty() {
            return Ok(self);
        }
        let mut chosen = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(meeting) = self.meetings.iter().find(|m| &m.id == id) else {
                return Err(DataError::UnknownMeeting {
                    id: id.clone(),
                    known: self.meeting_ids().join(", "),
                });
            };
            chosen.push(meeting.clone());
        }
        self.meetings = chosen;
        Ok(self)
    }

    /// The meetings' ids.
    pub fn meeting_ids(&self) -> Vec<String> {
        self.meetings.iter().map(|m| m.id.clone()).collect()
    }
}

fn unique<'a>(what: &str, ids: impl Iterator<Item = &'a str>) -> Result<(), DataError> {
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(DataError::DuplicateId {
                what: what.to_owned(),
                id: id.to_owned(),
            });
        }
    }
    Ok(())
}

fn not_empty(what: &str, field: &'static str, value: &str) -> Result<(), DataError> {
    if value.trim().is_empty() {
        return Err(DataError::Empty {
            what: what.to_owned(),
            field,
        });
    }
    Ok(())
}

/// The line that places a discussion in its meeting: "platform team, Sprint 42
/// retrospective (2026-11-14)". Part of the first-stage text, left out for the rerank.
pub fn meeting_header(team: &str, meeting: &str, date: &str) -> String {
    format!("{team} team, {meeting} ({date})")
}

/// The text embedded to find candidates: header, title and notes.
pub fn document_text(header: &str, title: &str, notes: &str) -> String {
    format!("{header}. {title}. {notes}")
}

/// The text embedded to rerank: title and notes, without the meeting header.
pub fn body_text(title: &str, notes: &str) -> String {
    format!("{title}. {notes}")
}

impl PastDiscussion {
    /// Its meeting header.
    pub fn header(&self) -> String {
        meeting_header(&self.team, &self.meeting, &self.date)
    }
}

impl Meeting {
    /// Its header.
    pub fn header(&self) -> String {
        meeting_header(&self.team, &self.title, &self.date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_valid() {
        let sample = Dataset::sample();
        sample.validate().unwrap();
        assert_eq!(sample.meetings.len(), 3);
        assert_eq!(sample.past.len(), 40);
    }

    #[test]
    fn the_labelled_dataset_is_big_varied_and_in_time_order() {
        let data = Dataset::labelled();
        data.validate().unwrap();
        let discussions: Vec<&Discussion> =
            data.meetings.iter().flat_map(|m| &m.discussions).collect();
        assert!(discussions.len() >= 300, "{}", discussions.len());
        assert!(data.meetings.len() >= 30);
        let teams: HashSet<&str> = data.meetings.iter().map(|m| m.team.as_str()).collect();
        assert!(teams.len() >= 4, "{teams:?}");
        assert!((8..=12).contains(&data.themes.len()));
        for d in &discussions {
            let theme = d.theme.as_deref().expect("every discussion is labelled");
            assert!(data.themes.contains_key(theme), "{theme}");
        }
        // Hand-written, not templated: no title and no sentence is used twice.
        let titles: HashSet<&str> = discussions.iter().map(|d| d.title.as_str()).collect();
        assert_eq!(titles.len(), discussions.len());
        let sentences: Vec<&str> = discussions
            .iter()
            .flat_map(|d| d.notes.split(". "))
            .collect();
        let unique: HashSet<&str> = sentences.iter().copied().collect();
        assert_eq!(unique.len(), sentences.len());
        // Oldest first: a meeting's past is the meetings before it.
        assert!(data.meetings.windows(2).all(|w| w[0].date <= w[1].date));
    }

    #[test]
    fn duplicate_and_unknown_ids_are_named() {
        let mut data = Dataset::sample();
        let copy = data.meetings[0].discussions[0].clone();
        data.meetings[0].discussions.push(copy);
        let err = data.validate().unwrap_err().to_string();
        assert_eq!(err, "discussion of meeting `m1` id `d1` is used twice");
        let err = Dataset::sample()
            .select(&["m9".to_owned()])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "no meeting `m9` in the data (meetings: m1, m2, m3)");
    }

    #[test]
    fn a_bad_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.json");
        std::fs::write(&path, r#"{"meetings": 3}"#).unwrap();
        let err = Dataset::from_file(&path).unwrap_err();
        assert!(matches!(err, DataError::Parse { .. }));
        assert!(err.to_string().contains("data.json"), "{err}");
    }
}
