//! Finding and rewriting links in encoded messages without decoding them.
//!
//! Guided by a type's link plan, these functions walk the protobuf wire format, visit every
//! `CASRef` (directly in a field or inside embedded messages), and copy every other byte
//! verbatim. Commit uses `rewrite` to put final child keys into a modified object; ingest uses
//! `scan` to learn an element's children.

use crate::error::{Error, Result};
use crate::types::{LinkPlans, Target, TypeId};

/// A `CASRef` as found in the bytes: the key bytes (a content key, or a workspace placeholder),
/// the target type and the leaf flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawLink<'a> {
    pub key: &'a [u8],
    pub ty: TypeId,
    pub isleaf: bool,
}

/// A replacement for a link found by [`rewrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewLink {
    pub key: Vec<u8>,
    pub ty: TypeId,
    pub isleaf: bool,
}

fn bad(reason: &str) -> Error {
    Error::codec("protobuf message", reason)
}

pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos).ok_or_else(|| bad("truncated varint"))?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(bad("varint overflows 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(bad("varint longer than ten bytes"))
}

pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a length-delimited payload starting at `pos`.
fn read_len<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8]> {
    let len = read_varint(buf, pos)?;
    let end = pos.checked_add(usize::try_from(len).map_err(|_| bad("length overflows"))?);
    let end = end.filter(|&e| e <= buf.len()).ok_or_else(|| bad("length runs past the end"))?;
    let payload = &buf[*pos..end];
    *pos = end;
    Ok(payload)
}

/// Skips one field value of `wire_type` (the tag already read).
fn skip(buf: &[u8], pos: &mut usize, wire_type: u8, field: u32, depth: u32) -> Result<()> {
    match wire_type {
        0 => {
            read_varint(buf, pos)?;
        }
        1 => advance(buf, pos, 8)?,
        2 => {
            read_len(buf, pos)?;
        }
        3 => {
            if depth > 64 {
                return Err(bad("groups nested too deeply"));
            }
            loop {
                let (f, wt) = read_tag(buf, pos)?;
                if wt == 4 {
                    if f != field {
                        return Err(bad("mismatched end group"));
                    }
                    break;
                }
                skip(buf, pos, wt, f, depth + 1)?;
            }
        }
        5 => advance(buf, pos, 4)?,
        _ => return Err(bad("invalid wire type")),
    }
    Ok(())
}

fn advance(buf: &[u8], pos: &mut usize, n: usize) -> Result<()> {
    if buf.len() - *pos < n {
        return Err(bad("truncated fixed-width field"));
    }
    *pos += n;
    Ok(())
}

fn read_tag(buf: &[u8], pos: &mut usize) -> Result<(u32, u8)> {
    let tag = read_varint(buf, pos)?;
    let field = u32::try_from(tag >> 3).map_err(|_| bad("field number overflows"))?;
    if field == 0 {
        return Err(bad("field number 0"));
    }
    Ok((field, (tag & 7) as u8))
}

/// Decodes the fields of a `CASRef` (key 1, type 2, isleaf 3); unknown fields are skipped.
pub(crate) fn parse_casref(buf: &[u8]) -> Result<RawLink<'_>> {
    let mut pos = 0;
    let mut key: &[u8] = &[];
    let mut ty = TypeId::new(0, 0);
    let mut isleaf = false;
    while pos < buf.len() {
        let (field, wt) = read_tag(buf, &mut pos)?;
        match (field, wt) {
            (1, 2) => key = read_len(buf, &mut pos)?,
            (2, 2) => ty = parse_gpbtype(read_len(buf, &mut pos)?)?,
            (3, 0) => isleaf = read_varint(buf, &mut pos)? != 0,
            _ => skip(buf, &mut pos, wt, field, 0)?,
        }
    }
    Ok(RawLink { key, ty, isleaf })
}

/// Decodes a `GPBType{object_id 1, version 2}`.
pub(crate) fn parse_gpbtype(buf: &[u8]) -> Result<TypeId> {
    let mut pos = 0;
    let mut ty = TypeId::new(0, 0);
    while pos < buf.len() {
        let (field, wt) = read_tag(buf, &mut pos)?;
        match (field, wt) {
            (1, 0) => ty.object_id = read_varint(buf, &mut pos)? as i32,
            (2, 0) => ty.version = read_varint(buf, &mut pos)? as i32,
            _ => skip(buf, &mut pos, wt, field, 0)?,
        }
    }
    Ok(ty)
}

/// Encodes a `CASRef` canonically: key, type, isleaf.
pub(crate) fn encode_casref(out: &mut Vec<u8>, key: &[u8], ty: TypeId, isleaf: bool) {
    out.push(0x0a);
    write_varint(out, key.len() as u64);
    out.extend_from_slice(key);
    let ty = ty.encode();
    out.push(0x12);
    write_varint(out, ty.len() as u64);
    out.extend_from_slice(&ty);
    out.push(0x18);
    out.push(u8::from(isleaf));
}

fn plan_target(plans: &LinkPlans, plan: usize, field: u32) -> Option<Target> {
    let fields = &plans.plan(plan).fields;
    fields.binary_search_by_key(&field, |(n, _)| *n).ok().map(|i| fields[i].1)
}

/// Calls `visit` for every link in `buf`, a message whose plan is `plan`, in wire order.
pub(crate) fn scan<'a>(
    buf: &'a [u8],
    plans: &LinkPlans,
    plan: usize,
    visit: &mut impl FnMut(RawLink<'a>) -> Result<()>,
) -> Result<()> {
    scan_at(buf, plans, plan, visit, 0)
}

fn scan_at<'a>(
    buf: &'a [u8],
    plans: &LinkPlans,
    plan: usize,
    visit: &mut impl FnMut(RawLink<'a>) -> Result<()>,
    depth: u32,
) -> Result<()> {
    if depth > 100 {
        return Err(bad("messages nested too deeply"));
    }
    let has_links = !plans.plan(plan).fields.is_empty();
    let mut pos = 0;
    while pos < buf.len() {
        let (field, wt) = read_tag(buf, &mut pos)?;
        match plan_target(plans, plan, field).filter(|_| has_links && wt == 2) {
            Some(Target::Link) => visit(parse_casref(read_len(buf, &mut pos)?)?)?,
            Some(Target::Nested(inner)) => scan_at(read_len(buf, &mut pos)?, plans, inner, visit, depth + 1)?,
            None => skip(buf, &mut pos, wt, field, 0)?,
        }
    }
    Ok(())
}

/// Copies `buf` into `out`, replacing each link for which `map` returns a new one. Every other
/// byte is copied verbatim; only the lengths of messages that enclose a rewritten link change.
pub(crate) fn rewrite(
    buf: &[u8],
    plans: &LinkPlans,
    plan: usize,
    map: &mut impl FnMut(RawLink<'_>) -> Result<Option<NewLink>>,
    out: &mut Vec<u8>,
) -> Result<()> {
    rewrite_at(buf, plans, plan, map, out, 0)
}

fn rewrite_at(
    buf: &[u8],
    plans: &LinkPlans,
    plan: usize,
    map: &mut impl FnMut(RawLink<'_>) -> Result<Option<NewLink>>,
    out: &mut Vec<u8>,
    depth: u32,
) -> Result<()> {
    if depth > 100 {
        return Err(bad("messages nested too deeply"));
    }
    if plans.plan(plan).fields.is_empty() {
        out.extend_from_slice(buf);
        return Ok(());
    }
    let mut pos = 0;
    let mut scratch = Vec::new();
    while pos < buf.len() {
        let start = pos;
        let (field, wt) = read_tag(buf, &mut pos)?;
        let tag_bytes = &buf[start..pos];
        match plan_target(plans, plan, field).filter(|_| wt == 2) {
            Some(Target::Link) => {
                let payload = read_len(buf, &mut pos)?;
                match map(parse_casref(payload)?)? {
                    Some(new) => {
                        scratch.clear();
                        encode_casref(&mut scratch, &new.key, new.ty, new.isleaf);
                        out.extend_from_slice(tag_bytes);
                        write_varint(out, scratch.len() as u64);
                        out.extend_from_slice(&scratch);
                    }
                    None => out.extend_from_slice(&buf[start..pos]),
                }
            }
            Some(Target::Nested(inner)) => {
                let payload = read_len(buf, &mut pos)?;
                let mut nested = Vec::with_capacity(payload.len() + 16);
                rewrite_at(payload, plans, inner, map, &mut nested, depth + 1)?;
                out.extend_from_slice(tag_bytes);
                write_varint(out, nested.len() as u64);
                out.extend_from_slice(&nested);
            }
            None => {
                skip(buf, &mut pos, wt, field, 0)?;
                out.extend_from_slice(&buf[start..pos]);
            }
        }
    }
    Ok(())
}
