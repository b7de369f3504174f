//! `import` and `export`.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dsf::json;
use dsf::store::BlobStore;
use dsf::structure::Envelope;
use dsf::{Element, Key, Registry, Repository, TypeId};
use serde_json::{Value as Json, json};

use super::*;
use crate::session::Session;
use crate::ui::{Ui, exit, fail};
use crate::workdir::DOCUMENT;

pub fn read_input(file: &Path) -> Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).context("cannot read standard input")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
    }
}

pub fn with_type(doc: Json, type_name: Option<&str>, registry: &Registry) -> Result<Json> {
    match (doc, type_name) {
        (Json::Object(mut m), Some(t)) if !m.contains_key(json::TYPE) => {
            let ty = resolve_type(registry, t)?;
            let name = registry.get(ty).map(|i| i.name().to_owned()).unwrap_or_default();
            m.insert(json::TYPE.to_owned(), Json::String(name));
            Ok(Json::Object(m))
        }
        (doc, _) => Ok(doc),
    }
}

pub async fn import(
    base: &Path,
    file: &Path,
    format: &str,
    type_name: Option<String>,
    force: bool,
    ui: Ui,
) -> Result<i32> {
    let s = Session::open(base)?;
    let mut sr = s.repo().await?;
    let head = s.load_current(&mut sr).await?;
    if !force {
        s.require_clean(&mut sr, head, "import").await?;
    }
    let bytes = read_input(file)?;
    let bad = |e: String| fail(format!("{}: {e}", file.display())).hint("nothing was changed");
    let alg = sr.repository().algorithm();
    let (root, new) = match format {
        "json" => {
            let doc = crate::workdir::parse_json(&bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
            let doc = with_type(doc, type_name.as_deref(), &s.registry)?;
            let parsed = s.parse(&mut sr, doc).await.map_err(|e| bad(e.to_string()))?;
            (parsed.root, parsed.new_elements)
        }
        "binary" => {
            let env = Envelope::decode(&s.registry, &bytes).map_err(|e| bad(e.to_string()))?;
            let root = env.head.key();
            let mut all: Vec<Element> = env.items.into_values().collect();
            all.push(env.head);
            if let Some(e) = all.iter().find(|e| e.key().algorithm() != alg) {
                return Err(bad(format!(
                    "element {} is keyed by {}, this repository by {}",
                    e.key(),
                    e.key().algorithm().name(),
                    alg.name()
                ))
                .into());
            }
            (root, all)
        }
        _ => {
            let t = type_name.as_deref().ok_or_else(|| fail("--format message needs --type").code(exit::USAGE))?;
            let ty = resolve_type(&s.registry, t)?;
            let desc = s.registry.require(ty)?.descriptor.clone();
            dsf::prost_reflect::DynamicMessage::decode(desc, bytes.as_slice())
                .map_err(|e| bad(format!("not an encoded {t}: {e}")))?;
            let e = Element::build(alg, &s.registry, ty, bytes).map_err(|e| bad(e.to_string()))?;
            (e.key(), vec![e])
        }
    };
    // Every link must lead to something here or in the file.
    let count = new.len();
    sr.repository_mut().add_elements(new)?;
    let known: HashSet<Key> = sr.repository().elements().iter().map(|e| e.key()).collect();
    let mut dangling: Vec<Key> = Vec::new();
    for e in sr.repository().elements().iter() {
        dangling.extend(e.children().iter().filter(|c| !known.contains(c)));
    }
    if !dangling.is_empty() {
        let present = s.store.has_blobs(dangling.clone()).await?;
        if let Some((k, _)) = dangling.iter().zip(present).find(|(_, has)| !has) {
            return Err(bad(format!("it links to object {k}, which is neither in the file nor stored")).into());
        }
        sr.fetch_graphs(dangling, &s.excluded()?).await?;
    }
    let doc = s.render(sr.repository(), root)?;
    s.wd.write_document(Some(&doc))?;
    ui.say(format!("Imported {count} objects into {DOCUMENT}: review it, then `dsf-cli commit -m MESSAGE`."));
    ui.emit(json!({ "root": root.to_hex(), "objects": count }));
    Ok(exit::OK)
}

pub fn all_types(registry: &Registry) -> Vec<TypeId> {
    registry.types().iter().map(|t| t.id).collect()
}

pub async fn export(base: &Path, rev: Option<String>, format: &str, output: Option<PathBuf>, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let sr = s.repo().await?;
    let k = s.resolve(sr.repository(), rev.as_deref().unwrap_or("HEAD"))?;
    let root = Session::root_of(sr.repository(), k)?;
    let elements = dsf::store::persist::collect(&s.store, &s.registry, &[root], &[], |_| false).await?;
    let bytes = if format == "json" {
        let mut index = Repository::with_key(s.registry.clone(), "export", sr.repository().algorithm());
        index.add_elements(elements)?;
        let doc = json::render(&s.registry, index.elements(), root, &[])?;
        let mut b = serde_json::to_vec_pretty(&doc)?;
        b.push(b'\n');
        b
    } else {
        let mut items: HashMap<Key, Element> = elements.into_iter().map(|e| (e.key(), e)).collect();
        let head = items.remove(&root).context("the root was collected")?;
        if output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            return Err(fail("binary output to a terminal").hint("add -o FILE, or redirect standard output").into());
        }
        Envelope { head, items }.encode()
    };
    match &output {
        Some(path) => std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(&bytes)?,
    }
    if output.is_some() {
        ui.say(format!("Wrote commit {} ({} bytes)", ui.key(&short(&k)), bytes.len()));
    }
    Ok(exit::OK)
}
