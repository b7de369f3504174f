//! `log` (with its graph of lanes) and `show`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::Result;
use dsf::{Key, Repository};
use serde_json::json;

use super::*;
use crate::session::Session;
use crate::timefmt;
use crate::ui::{Ui, exit};

/// Commits reachable from `starts`, children before parents, newest first among the ready
/// (parents that are not here, beyond a shallow boundary, are left out).
pub fn topo_order(repo: &Repository, starts: &[Key]) -> Vec<Key> {
    let all: Vec<Key> = repo.ancestry(starts).into_iter().filter(|k| repo.commit_info(*k).is_ok()).collect();
    let set: HashSet<Key> = all.iter().copied().collect();
    let mut children: HashMap<Key, usize> = HashMap::new();
    for k in &all {
        if let Ok(c) = repo.commit_info(*k) {
            for p in c.parent_keys().filter(|p| set.contains(p)) {
                *children.entry(p).or_default() += 1;
            }
        }
    }
    let date = |k: &Key| repo.commit_info(*k).map(|c| c.date).unwrap_or(0.0);
    let mut ready: Vec<Key> = all.iter().copied().filter(|k| !children.contains_key(k)).collect();
    let mut out = Vec::with_capacity(all.len());
    while !ready.is_empty() {
        let (i, _) = ready
            .iter()
            .enumerate()
            .max_by(|a, b| date(a.1).total_cmp(&date(b.1)).then_with(|| b.1.cmp(a.1)))
            .expect("not empty");
        let k = ready.swap_remove(i);
        out.push(k);
        if let Ok(c) = repo.commit_info(k) {
            for p in c.parent_keys().filter(|p| set.contains(p)) {
                let n = children.get_mut(&p).expect("counted");
                *n -= 1;
                if *n == 0 {
                    ready.push(p);
                }
            }
        }
    }
    out
}

/// Draws lanes, git style: `*` for the commit, `|` for lanes still waiting for their commit,
/// `/` where a lane joins the commit's lane, `\\` where a merge opens a lane.
struct Graph {
    lanes: Vec<Option<Key>>,
}

/// The lines [`Graph::place`] draws for one commit.
struct Rows {
    /// Lanes joining before the commit.
    before: Vec<String>,
    /// The commit's row prefix.
    line: String,
    /// The prefix of the commit's further lines.
    cont: String,
    /// Lanes a merge opens after the commit.
    after: Vec<String>,
}

impl Graph {
    fn cells(&self, marks: &[(usize, char)]) -> String {
        let width = self.lanes.len().max(marks.iter().map(|m| m.0 / 2 + 1).max().unwrap_or(0));
        let mut row: Vec<char> = vec![' '; width * 2];
        for (i, l) in self.lanes.iter().enumerate() {
            if l.is_some() {
                row[i * 2] = '|';
            }
        }
        for &(at, c) in marks {
            if at < row.len() {
                row[at] = c;
            }
        }
        row.into_iter().collect::<String>().trim_end().to_owned()
    }

    fn free_lane(&mut self, k: Key) -> usize {
        match self.lanes.iter().position(Option::is_none) {
            Some(free) => {
                self.lanes[free] = Some(k);
                free
            }
            None => {
                self.lanes.push(Some(k));
                self.lanes.len() - 1
            }
        }
    }

    fn place(&mut self, commit: Key, parents: &[Key]) -> Rows {
        let col = match self.lanes.iter().position(|l| *l == Some(commit)) {
            Some(c) => c,
            None => self.free_lane(commit),
        };
        let mut before = Vec::new();
        let joined: Vec<usize> = (0..self.lanes.len()).filter(|&i| i != col && self.lanes[i] == Some(commit)).collect();
        if !joined.is_empty() {
            let marks: Vec<(usize, char)> = joined
                .iter()
                .flat_map(|&j| [(j * 2, ' '), if j > col { (j * 2 - 1, '/') } else { (j * 2 + 1, '\\') }])
                .collect();
            before.push(self.cells(&marks));
            for &j in &joined {
                self.lanes[j] = None;
            }
            while self.lanes.last() == Some(&None) {
                self.lanes.pop();
            }
        }
        let line = format!("{} ", self.cells(&[(col * 2, '*')]));
        let line = format!("{line:<width$}", width = self.lanes.len() * 2);
        self.lanes[col] = parents.first().copied();
        let mut after = Vec::new();
        for p in parents.iter().skip(1) {
            if self.lanes.contains(&Some(*p)) {
                continue;
            }
            let at = self.free_lane(*p);
            let mark = if at > col { (at * 2 - 1, '\\') } else { (at * 2 + 1, '/') };
            after.push(self.cells(&[(at * 2, ' '), mark]));
        }
        while self.lanes.last() == Some(&None) {
            self.lanes.pop();
        }
        let cont = format!("{:<width$}", self.cells(&[]), width = self.lanes.len() * 2);
        Rows { before, line, cont, after }
    }
}

pub async fn log(
    base: &Path,
    rev: Option<String>,
    all: bool,
    max: Option<usize>,
    oneline: bool,
    ui: Ui,
) -> Result<i32> {
    let s = Session::open(base)?;
    let sr = s.repo().await?;
    let repo = sr.repository();
    let mut labels: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    let head = s.state().commit.as_deref().and_then(Key::from_hex);
    for b in repo.branches() {
        let name = s.branch_name(repo, &b.key);
        for h in &b.heads {
            let current = s.state().branch.as_deref() == Some(b.key.as_str()) && !s.state().detached;
            labels.entry(*h).or_default().push(if current { format!("HEAD -> {name}") } else { name.clone() });
        }
    }
    if let (Some(h), true) = (head, s.state().detached) {
        labels.entry(h).or_default().insert(0, "HEAD".into());
    }
    for k in s.state().shallow.iter().filter_map(|k| Key::from_hex(k)) {
        labels.entry(k).or_default().push("shallow".into());
    }
    let mut remote_heads = Vec::new();
    for (remote, heads) in s.wd.all_remote_heads()? {
        for (key, hs) in &heads.branches {
            for h in hs.iter().filter_map(|h| Key::from_hex(h)) {
                if repo.commit_info(h).is_ok() {
                    labels.entry(h).or_default().push(format!("{remote}/{}", heads.name_of(key)));
                    remote_heads.push(h);
                }
            }
        }
    }
    let starts: Vec<Key> = if all {
        let mut v = repo.current_heads();
        v.extend(remote_heads);
        v
    } else {
        vec![s.resolve(repo, rev.as_deref().unwrap_or("HEAD"))?]
    };
    let order = topo_order(repo, &starts);
    let mut graph = Graph { lanes: Vec::new() };
    let mut list = Vec::new();
    for k in order.iter().take(max.unwrap_or(usize::MAX)) {
        let c = repo.commit_info(*k)?;
        let parents: Vec<Key> = c.parent_keys().collect();
        let Rows { before, line, cont, after } = graph.place(*k, &parents);
        for b in before {
            ui.out(b);
        }
        let tags = labels.get(k).map(|l| format!(" ({})", l.join(", "))).unwrap_or_default();
        if oneline {
            ui.out(format!(
                "{line}{}{} {}",
                ui.key(&short(k)),
                ui.branch(&tags),
                c.comment.lines().next().unwrap_or("")
            ));
        } else {
            ui.out(format!("{line}{} {}{}", ui.key("commit"), ui.key(&k.to_hex()), ui.branch(&tags)));
            if parents.len() > 1 {
                ui.out(format!("{cont}Merge: {}", parents.iter().map(short).collect::<Vec<_>>().join(" ")));
            }
            ui.out(format!("{cont}Date:  {}", timefmt::format(c.date)));
            ui.out(cont.trim_end());
            for l in c.comment.lines() {
                ui.out(format!("{cont}    {l}"));
            }
            ui.out(cont.trim_end());
        }
        for a in after {
            ui.out(a);
        }
        list.push(json!({
            "commit": k.to_hex(), "date": c.date, "comment": c.comment,
            "parents": c.parents.iter().map(|p| json!({"commit": p.commit.to_hex(), "relationship": format!("{:?}", p.relationship).to_lowercase()})).collect::<Vec<_>>(),
            "labels": labels.get(k).cloned().unwrap_or_default(),
        }));
    }
    ui.emit(json!({ "commits": list }));
    Ok(exit::OK)
}

pub async fn show(base: &Path, rev: Option<String>, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let mut sr = s.repo().await?;
    let k = s.resolve(sr.repository(), rev.as_deref().unwrap_or("HEAD"))?;
    let c = sr.repository().commit_info(k)?.clone();
    let first = c.first_parent();
    let mut commits = vec![k];
    commits.extend(first);
    s.load_commits(&mut sr, &commits).await?;
    let repo = sr.repository();
    ui.out(format!("{} {}", ui.key("commit"), ui.key(&k.to_hex())));
    for p in &c.parents {
        ui.out(format!("{:?}: {}", p.relationship, p.commit.to_hex()));
    }
    ui.out(format!("Date:  {}", timefmt::format(c.date)));
    ui.out("");
    for l in c.comment.lines() {
        ui.out(format!("    {l}"));
    }
    ui.out("");
    let root = Session::root_of(repo, k)?;
    let changes = match first {
        Some(p) => dsf::merge::diff_graphs(&s.registry, repo.elements(), Session::root_of(repo, p)?, root)?,
        None => Vec::new(),
    };
    if first.is_none() {
        ui.out(format!("(first commit: root object {})", root.to_hex()));
    }
    print_changes(&ui, &changes);
    ui.emit(json!({
        "commit": k.to_hex(), "date": c.date, "comment": c.comment, "root": root.to_hex(),
        "parents": c.parents.iter().map(|p| p.commit.to_hex()).collect::<Vec<_>>(),
        "changes": changes.iter().map(change_json).collect::<Vec<_>>(),
    }));
    Ok(exit::OK)
}
