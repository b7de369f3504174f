//! `hash-object` and `cat-object`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use dsf::json;
use dsf::{Element, HashAlgorithm, Key, Registry};
use serde_json::json;

use super::*;
use crate::session::Session;
use crate::ui::{Ui, exit, fail};
use crate::workdir::Workdir;

pub fn hash_object(
    base: &Path,
    type_name: Option<String>,
    json_text: Option<String>,
    file: Option<PathBuf>,
    algorithm: Option<String>,
    ui: Ui,
) -> Result<i32> {
    let wd = Workdir::find(base).ok();
    let registry = match &wd {
        Some(wd) => wd.registry()?,
        None => Registry::builtin(),
    };
    let alg: HashAlgorithm = match (&algorithm, &wd) {
        (Some(a), _) => a.parse().map_err(|e: String| fail(e).code(exit::USAGE))?,
        (None, Some(wd)) => wd.algorithm()?,
        (None, None) => HashAlgorithm::default(),
    };
    // `hash-object --json TEXT`: with the global --json flag, an argument that is no file but
    // an object's JSON text is that text.
    let json_text = match (json_text, &file) {
        (Some(t), _) => Some(t),
        (None, Some(f)) if ui.json && !base.join(f).exists() && f.to_string_lossy().trim_start().starts_with('{') => {
            Some(f.to_string_lossy().into_owned())
        }
        _ => None,
    };
    let bytes = match (&json_text, &file) {
        (Some(t), _) => t.clone().into_bytes(),
        (None, Some(f)) => read_input(&within(base, f.clone()))?,
        (None, None) => {
            return Err(fail("give the object's JSON with --text TEXT, or a FILE").code(exit::USAGE).into());
        }
    };
    let looks_json = json_text.is_some() || bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let (key, ty) = if looks_json {
        let doc = crate::workdir::parse_json(&bytes).map_err(|e| fail(format!("not valid JSON: {e}")))?;
        let doc = with_type(doc, type_name.as_deref(), &registry)?;
        let parsed = json::parse(&registry, alg, &dsf::Elements::default(), doc).map_err(|e| {
            fail(e.to_string()).hint("an object is JSON in the form of root.json; give --type if it has no \"@type\"")
        })?;
        (parsed.root, parsed.root_type)
    } else {
        let t = type_name.ok_or_else(|| fail("binary input needs --type").code(exit::USAGE))?;
        let ty = resolve_type(&registry, &t)?;
        let desc = registry.require(ty)?.descriptor.clone();
        dsf::prost_reflect::DynamicMessage::decode(desc, bytes.as_slice())
            .map_err(|e| fail(format!("the input is not an encoded {t}: {e}")))?;
        (alg.element_key(&bytes, ty), ty)
    };
    ui.out(key.to_hex());
    ui.emit(
        json!({ "key": key.to_hex(), "type": { "id": ty.object_id, "version": ty.version }, "algorithm": alg.name() }),
    );
    Ok(exit::OK)
}

/// Reads one element from the local store (a blob, or a commit row); `None` if absent.
pub async fn stored_element(s: &Session, key: Key) -> Result<Option<Element>> {
    use dsf::store::{BlobStore, KvStore};
    if let Some(row) = s.store.get_blobs(vec![key]).await?.pop().flatten() {
        return Ok(Some(Element::from_stored(&row.element, &row.children)?));
    }
    match s.store.get(key.as_bytes().to_vec()).await? {
        Some(v) => Ok(Some(Element::decode(&s.registry, &v)?)),
        None => Ok(None),
    }
}

pub async fn cat_object(base: &Path, key: &str, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let k = Key::from_hex(key).ok_or_else(|| {
        fail(format!("{key:?} is not a key")).hint("a key is 40 hex digits (64 for blake3)").code(exit::USAGE)
    })?;
    let e = stored_element(&s, k).await?.ok_or_else(|| fail(format!("no object {k} in the local store")))?;
    let mut index = dsf::Elements::default();
    index.insert(e);
    let doc = json::render(&s.registry, &index, k, &all_types(&s.registry))?;
    let text = serde_json::to_string_pretty(&doc)?;
    if ui.json {
        ui.emit(doc);
    } else {
        ui.out(text);
    }
    Ok(exit::OK)
}
