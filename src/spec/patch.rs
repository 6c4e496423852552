//! JSON Patch (RFC 6902) operations: how every control describes its change, how the
//! audit record and `explain` show it, and how the pipeline applies it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PatchError {
    #[error("JSON pointer {0:?} does not start with '/'")]
    BadPointer(String),
    #[error("patch path {0} does not exist")]
    NoSuchPath(String),
    #[error("patch path {0} goes through a value that is not an object or array")]
    NotContainer(String),
    #[error("patch path {0} has a bad array index")]
    BadIndex(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Replace,
    Remove,
}

/// One RFC 6902 operation (the subset hardrun emits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOp {
    pub op: Op,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl PatchOp {
    pub fn add(path: impl Into<String>, value: Value) -> Self {
        PatchOp { op: Op::Add, path: path.into(), value: Some(value) }
    }
    pub fn replace(path: impl Into<String>, value: Value) -> Self {
        PatchOp { op: Op::Replace, path: path.into(), value: Some(value) }
    }
    pub fn remove(path: impl Into<String>) -> Self {
        PatchOp { op: Op::Remove, path: path.into(), value: None }
    }
    /// `add` when the target is absent, `replace` when present.
    pub fn set(doc: &Value, path: impl Into<String>, value: Value) -> Self {
        let path = path.into();
        if doc.pointer(&path).is_some() {
            Self::replace(path, value)
        } else {
            Self::add(path, value)
        }
    }

    /// [`PatchOp::set`] on `rel` inside `obj`, where `obj` sits at `base` in the document
    /// (`/process`, `/mounts/3`, or `""` for a document that is the object itself).
    pub fn set_under(base: &str, obj: &Value, rel: &str, value: Value) -> Self {
        let op = Self::set(obj, rel, value);
        PatchOp { path: format!("{base}{}", op.path), ..op }
    }
}

/// An ordered list of operations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Patch(pub Vec<PatchOp>);

impl Patch {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn push(&mut self, op: PatchOp) {
        self.0.push(op);
    }
    pub fn extend(&mut self, other: Patch) {
        self.0.extend(other.0);
    }

    /// Applies every operation in order; on error `doc` may be partly changed, so
    /// callers apply to a copy.
    pub fn apply(&self, doc: &mut Value) -> Result<(), PatchError> {
        self.0.iter().try_for_each(|op| apply_op(doc, op))
    }
}

/// Escapes one path segment (RFC 6901).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn split(path: &str) -> Result<(Vec<String>, String), PatchError> {
    let rest = path.strip_prefix('/').ok_or_else(|| PatchError::BadPointer(path.to_owned()))?;
    let mut parts: Vec<String> = rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    let last = parts.pop().unwrap_or_default();
    Ok((parts, last))
}

fn parent_mut<'a>(doc: &'a mut Value, parents: &[String], path: &str) -> Result<&'a mut Value, PatchError> {
    let mut cur = doc;
    for seg in parents {
        cur = match cur {
            Value::Object(m) => m.get_mut(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => return Err(PatchError::NotContainer(path.to_owned())),
        }
        .ok_or_else(|| PatchError::NoSuchPath(path.to_owned()))?;
    }
    Ok(cur)
}

fn apply_op(doc: &mut Value, op: &PatchOp) -> Result<(), PatchError> {
    let path = op.path.as_str();
    let (parents, last) = split(path)?;
    let parent = parent_mut(doc, &parents, path)?;
    let value = op.value.clone().unwrap_or(Value::Null);
    let index = |len: usize, allow_end: bool| -> Result<usize, PatchError> {
        if allow_end && last == "-" {
            return Ok(len);
        }
        match last.parse::<usize>() {
            Ok(i) if i < len || (allow_end && i == len) => Ok(i),
            _ => Err(PatchError::BadIndex(path.to_owned())),
        }
    };
    match (parent, op.op) {
        (Value::Object(m), Op::Add) => {
            m.insert(last, value);
        }
        (Value::Object(m), Op::Replace) => {
            *m.get_mut(&last).ok_or_else(|| PatchError::NoSuchPath(path.to_owned()))? = value;
        }
        (Value::Object(m), Op::Remove) => {
            m.shift_remove(&last).ok_or_else(|| PatchError::NoSuchPath(path.to_owned()))?;
        }
        (Value::Array(a), Op::Add) => {
            let i = index(a.len(), true)?;
            a.insert(i, value);
        }
        (Value::Array(a), Op::Replace) => {
            let i = index(a.len(), false)?;
            a[i] = value;
        }
        (Value::Array(a), Op::Remove) => {
            let i = index(a.len(), false)?;
            a.remove(i);
        }
        _ => return Err(PatchError::NotContainer(path.to_owned())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn add_replace_remove() {
        let mut d = json!({"a": {"b": [1, 2]}, "x/y": 1, "t~": 2});
        Patch(vec![
            PatchOp::add("/a/c", json!(true)),
            PatchOp::replace("/a/b/0", json!(9)),
            PatchOp::add("/a/b/-", json!(3)),
            PatchOp::remove("/x~1y"),
            PatchOp::replace("/t~0", json!(3)),
        ])
        .apply(&mut d)
        .unwrap();
        assert_eq!(d, json!({"a": {"b": [9, 2, 3], "c": true}, "t~": 3}));
    }

    #[test]
    fn errors() {
        let mut d = json!({"a": 1});
        assert_eq!(PatchOp::replace("/b", json!(1)).pipe(&mut d), Err(PatchError::NoSuchPath("/b".into())));
        assert_eq!(PatchOp::add("/a/b", json!(1)).pipe(&mut d), Err(PatchError::NotContainer("/a/b".into())));
        assert_eq!(PatchOp::add("a", json!(1)).pipe(&mut d), Err(PatchError::BadPointer("a".into())));
        let mut d = json!({"a": [1]});
        assert_eq!(PatchOp::remove("/a/5").pipe(&mut d), Err(PatchError::BadIndex("/a/5".into())));
    }

    #[test]
    fn set_picks_add_or_replace() {
        let d = json!({"a": 1});
        assert_eq!(PatchOp::set(&d, "/a", json!(2)).op, Op::Replace);
        assert_eq!(PatchOp::set(&d, "/b", json!(2)).op, Op::Add);
    }

    #[test]
    fn serializes_as_rfc6902() {
        let p = Patch(vec![PatchOp::remove("/a"), PatchOp::add("/b", json!(1))]);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!([{"op":"remove","path":"/a"},{"op":"add","path":"/b","value":1}])
        );
    }

    impl PatchOp {
        fn pipe(self, d: &mut Value) -> Result<(), PatchError> {
            Patch(vec![self]).apply(d)
        }
    }
}
