//! `types`: list and register types.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};
use dsf::{Registry, TypeId};
use serde_json::json;

use crate::ui::{Ui, exit, fail};
use crate::workdir::Workdir;

/// A type by full name, `ID` or `ID/VERSION`.
pub fn resolve_type(registry: &Registry, name: &str) -> Result<TypeId> {
    let by_id = || -> Option<TypeId> {
        let (id, version) = name.split_once('/').unwrap_or((name, "1"));
        Some(TypeId::new(id.parse().ok()?, version.parse().ok()?))
    };
    let ty = registry.by_name(name).or_else(by_id).filter(|t| registry.get(*t).is_some());
    ty.ok_or_else(|| {
        fail(format!("unknown type {name:?}"))
            .hint("`dsf-cli types` lists the registered types; `dsf-cli types add FILE` registers more")
            .into()
    })
}

pub fn types_list(base: &Path, ui: Ui) -> Result<i32> {
    let registry = match Workdir::find(base) {
        Ok(wd) => wd.registry()?,
        Err(_) => Registry::builtin(),
    };
    let mut types: Vec<_> = registry.types().into_iter().map(|t| (t.id, t.name().to_owned())).collect();
    types.sort();
    for (id, name) in &types {
        ui.out(format!("{:>8}/{}  {name}", id.object_id, id.version));
    }
    ui.emit(json!({
        "types": types.iter().map(|(id, n)| json!({"id": id.object_id, "version": id.version, "name": n})).collect::<Vec<_>>(),
    }));
    Ok(exit::OK)
}

pub fn types_add(base: &Path, file: &Path, ui: Ui) -> Result<i32> {
    let wd = Workdir::find(base)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let before: HashSet<TypeId> = wd.registry()?.types().iter().map(|t| t.id).collect();
    let mut sets: Vec<Vec<u8>> = wd.descriptor_sets()?.into_iter().map(|(_, b)| b).collect();
    sets.push(bytes.clone());
    let mut all: Vec<&[u8]> = vec![dsf::proto::DESCRIPTOR_SET];
    all.extend(sets.iter().map(Vec::as_slice));
    let registry = Registry::from_descriptor_sets(&all).map_err(|e| {
        fail(format!("{} cannot be registered: {e}", file.display()))
            .hint("give a FileDescriptorSet made with protoc --include_imports --descriptor_set_out=FILE")
    })?;
    let mut added: Vec<_> =
        registry.types().into_iter().filter(|t| !before.contains(&t.id)).map(|t| (t.id, t.name().to_owned())).collect();
    added.sort();
    if added.is_empty() {
        return Err(fail(format!("{} declares no new types", file.display()))
            .hint("a type is a message with enum _MessageTypeIdentifier { _ID = n; _VERSION = 1; }")
            .into());
    }
    let stem = file.file_stem().map_or_else(|| "types".into(), |s| s.to_string_lossy().into_owned());
    let mut name = format!("{stem}.pb");
    let mut n = 1;
    while wd.dir.join(crate::workdir::DOT).join("types").join(&name).exists() {
        n += 1;
        name = format!("{stem}-{n}.pb");
    }
    wd.add_descriptor_set(&name, &bytes)?;
    for (id, name) in &added {
        ui.say(format!("registered {:>6}/{}  {name}", id.object_id, id.version));
    }
    ui.emit(json!({ "added": added.iter().map(|(id, n)| json!({"id": id.object_id, "version": id.version, "name": n})).collect::<Vec<_>>() }));
    Ok(exit::OK)
}
