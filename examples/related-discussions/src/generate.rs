//! Large synthetic datasets for benchmarks: deterministic from a seed, built by
//! recombining the labelled dataset's titles and sentences within a theme, with a
//! distinct detail per discussion so that no two texts are the same (the store would
//! otherwise embed a repeated text once, and flatter the benchmark).
//!
//! Not for measuring quality: a generated discussion shares sentences with others of its
//! theme, which makes finding them easy.

use std::collections::BTreeMap;

use crate::data::{Dataset, Discussion, Meeting};

/// Discussions per generated meeting.
pub const PER_MEETING: usize = 10;

const TEAMS: [&str; 6] = ["payments", "mobile", "data", "platform", "search", "growth"];
const DETAILS: [&str; 8] = [
    "It came up {n} times since the last retro.",
    "We lost about {n} hours to it this sprint.",
    "{n} people voted for it.",
    "The ticket for it is {n} days old.",
    "It cost us {n} failed attempts this week.",
    "Someone counted {n} messages about it in the channel.",
    "It delayed {n} pull requests.",
    "We estimate {n} hours to fix it properly.",
];

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `n` discussions in meetings of [`PER_MEETING`], oldest first, from `seed`: the same
/// arguments give the same dataset.
pub fn generate(n: usize, seed: u64) -> Dataset {
    let source = Dataset::labelled();
    // Per theme: its titles and its sentences.
    let mut by_theme: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for d in source.meetings.iter().flat_map(|m| &m.discussions) {
        let theme = d.theme.clone().unwrap_or_default();
        let entry = by_theme.entry(theme).or_default();
        entry.0.push(d.title.clone());
        for sentence in d.notes.split_inclusive(". ") {
            entry.1.push(sentence.trim().to_owned());
        }
    }
    let themes: Vec<&String> = by_theme.keys().collect();
    let mut rng = Rng(seed);
    let mut meetings = Vec::new();
    let mut made = 0;
    while made < n {
        let k = meetings.len();
        let team = TEAMS[k % TEAMS.len()];
        let count = PER_MEETING.min(n - made);
        let mut discussions = Vec::with_capacity(count);
        for i in 0..count {
            let theme = themes[rng.below(themes.len())];
            let (titles, sentences) = &by_theme[theme];
            let mut notes = Vec::new();
            for _ in 0..2 + rng.below(2) {
                notes.push(sentences[rng.below(sentences.len())].clone());
            }
            let detail =
                DETAILS[rng.below(DETAILS.len())].replace("{n}", &(2 + made + i).to_string());
            notes.push(detail);
            discussions.push(Discussion {
                id: format!("d{}", i + 1),
                title: titles[rng.below(titles.len())].clone(),
                notes: notes.join(" "),
                votes: rng.below(10) as u32,
                theme: Some(theme.clone()),
            });
        }
        made += count;
        let week = k / TEAMS.len();
        meetings.push(Meeting {
            id: format!("g{}", k + 1),
            team: team.to_owned(),
            title: format!("Sprint {} retrospective", week + 1),
            date: format!("week {:05}", week + 1),
            discussions,
        });
    }
    Dataset {
        meetings,
        past: Vec::new(),
        themes: source.themes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_sets_are_deterministic_valid_and_distinct() {
        let a = generate(10_005, 42);
        assert_eq!(a, generate(10_005, 42));
        assert_ne!(a, generate(10_005, 43));
        a.validate().unwrap();
        let texts: Vec<String> = a
            .meetings
            .iter()
            .flat_map(|m| &m.discussions)
            .map(|d| format!("{}. {}", d.title, d.notes))
            .collect();
        assert_eq!(texts.len(), 10_005);
        assert_eq!(texts.iter().collect::<HashSet<_>>().len(), 10_005);
        assert_eq!(a.meetings.len(), 1001);
    }
}
