//! Where each YAML node of a file is: a map from a node's path (a JSON Pointer into its
//! document, `/spec/capabilities/allow/2`) to the line and column of its key and value.
//! The loader's parser keeps no positions, so this is a second, span-aware parse of the
//! same text; it only places findings, it never decides whether a document is valid.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn from_marker(m: &Marker) -> Pos {
        Pos { line: m.line(), column: m.col() + 1 }
    }
}

/// One node: where its key is (mapping values), where its value starts, and the text of
/// a scalar value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub key: Option<Pos>,
    pub value: Pos,
    pub scalar: Option<String>,
}

/// The nodes of one document.
#[derive(Debug, Clone, Default)]
pub struct DocSpans {
    pub start: Option<Pos>,
    nodes: HashMap<String, Node>,
    /// Children of each container, in order (paths), for searching a subtree.
    children: HashMap<String, Vec<String>>,
}

impl DocSpans {
    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Where a finding about `path` points: the key for a mapping entry (that is
    /// what a person reads as "the field"), else the value.
    pub fn pos(&self, path: &str) -> Option<Pos> {
        self.nodes.get(path).map(|n| n.key.unwrap_or(n.value))
    }

    /// Where the value at `path` starts.
    pub fn value_pos(&self, path: &str) -> Option<Pos> {
        self.nodes.get(path).map(|n| n.value)
    }

    /// The closest existing node at or above `path`.
    pub fn nearest(&self, path: &str) -> Option<(&str, &Node)> {
        let mut p = path;
        loop {
            if let Some((k, n)) = self.nodes.get_key_value(p) {
                return Some((k.as_str(), n));
            }
            if p.is_empty() {
                return None;
            }
            p = p.rfind('/').map_or("", |i| &p[..i]);
        }
    }

    /// The first scalar at or under `path` (depth first, in document order) for which
    /// `pred` holds: finds the list entry a message names.
    pub fn find_scalar(&self, path: &str, pred: &dyn Fn(&str) -> bool) -> Option<(&str, &Node)> {
        let (k, n) = self.nodes.get_key_value(path)?;
        if n.scalar.as_deref().is_some_and(pred) {
            return Some((k.as_str(), n));
        }
        for child in self.children.get(path).into_iter().flatten() {
            if let Some(found) = self.find_scalar(child, pred) {
                return Some(found);
            }
        }
        None
    }

    /// The paths of a container's children, in document order.
    pub fn children(&self, path: &str) -> &[String] {
        self.children.get(path).map_or(&[], Vec::as_slice)
    }
}

/// The span maps of every document of a file, in stream order (the order the loader's
/// deserializer yields them, empty documents included).
#[derive(Debug, Clone, Default)]
pub struct SpanMap {
    pub docs: Vec<DocSpans>,
}

impl SpanMap {
    /// Parses `text`. A parse error keeps what was read up to it: the loader reports
    /// syntax errors, this only places things.
    pub fn parse(text: &str) -> SpanMap {
        let mut b = Builder::default();
        let _ = Parser::new_from_str(text).load(&mut b, true);
        SpanMap { docs: b.docs }
    }

    pub fn doc(&self, i: usize) -> Option<&DocSpans> {
        self.docs.get(i)
    }
}

/// A JSON Pointer segment (RFC 6901 escaping).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `parent` + one segment.
pub fn join(parent: &str, segment: &str) -> String {
    format!("{parent}/{}", escape(segment))
}

enum Frame {
    Map { path: Option<String>, key: Option<(String, Pos)>, expecting_key: bool },
    Seq { path: Option<String>, next: usize },
}

#[derive(Default)]
struct Builder {
    docs: Vec<DocSpans>,
    stack: Vec<Frame>,
}

impl Builder {
    /// The path and key position of the node starting now; `None` path: inside a
    /// complex key, not addressable.
    fn place(&mut self, is_scalar: Option<&str>, mark: Pos) -> Option<(Option<String>, Option<Pos>)> {
        match self.stack.last_mut() {
            None => Some((Some(String::new()), None)),
            Some(Frame::Map { path, key, expecting_key }) => {
                if *expecting_key {
                    *expecting_key = false;
                    *key = Some((is_scalar.unwrap_or("?").to_owned(), mark));
                    if is_scalar.is_some() {
                        return None;
                    }
                    // A complex key: its contents are not addressable.
                    return Some((None, None));
                }
                *expecting_key = true;
                let (k, kpos) = key.take()?;
                Some((path.as_ref().map(|p| join(p, &k)), Some(kpos)))
            }
            Some(Frame::Seq { path, next }) => {
                let i = *next;
                *next += 1;
                Some((path.as_ref().map(|p| join(p, &i.to_string())), None))
            }
        }
    }

    fn record(&mut self, path: &Option<String>, key: Option<Pos>, value: Pos, scalar: Option<String>) {
        let (Some(path), Some(doc)) = (path, self.docs.last_mut()) else { return };
        if let Some(i) = path.rfind('/') {
            doc.children.entry(path[..i].to_owned()).or_default().push(path.clone());
        }
        doc.nodes.insert(path.clone(), Node { key, value, scalar });
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from_marker(&mark);
        match ev {
            Event::DocumentStart => {
                self.stack.clear();
                self.docs.push(DocSpans { start: Some(pos), ..Default::default() });
            }
            Event::Scalar(text, ..) => {
                if let Some((path, key)) = self.place(Some(&text), pos) {
                    self.record(&path, key, pos, Some(text));
                }
            }
            Event::Alias(_) => {
                if let Some((path, key)) = self.place(Some("*"), pos) {
                    self.record(&path, key, pos, None);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let (path, key) = self.place(None, pos).unwrap_or((None, None));
                self.record(&path, key, pos, None);
                self.stack.push(if is_map {
                    Frame::Map { path, key: None, expecting_key: true }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
apiVersion: v1
spec:
  caps:
    allow: [A, B]
  list:
    - name: x
      y: 2
---
kind: Other
";

    #[test]
    fn paths_and_positions() {
        let m = SpanMap::parse(TEXT);
        assert_eq!(m.docs.len(), 2);
        let d = m.doc(0).unwrap();
        assert_eq!(d.pos("/apiVersion"), Some(Pos { line: 2, column: 1 }));
        assert_eq!(d.value_pos("/apiVersion"), Some(Pos { line: 2, column: 13 }));
        assert_eq!(d.pos("/spec/caps/allow"), Some(Pos { line: 5, column: 5 }));
        assert_eq!(d.pos("/spec/caps/allow/1"), Some(Pos { line: 5, column: 16 }));
        assert_eq!(d.pos("/spec/list/0/y"), Some(Pos { line: 8, column: 7 }));
        assert_eq!(d.value_pos("/spec/list/0/y"), Some(Pos { line: 8, column: 10 }));
        let (p, _) = d.find_scalar("/spec", &|s| s == "B").unwrap();
        assert_eq!(p, "/spec/caps/allow/1");
        assert_eq!(d.nearest("/spec/caps/nothing/3").unwrap().0, "/spec/caps");
        assert_eq!(m.doc(1).unwrap().pos("/kind"), Some(Pos { line: 10, column: 1 }));
    }

    #[test]
    fn escaping() {
        let m = SpanMap::parse("a/b: {c~d: 1}\n");
        assert!(m.doc(0).unwrap().node("/a~1b/c~0d").is_some());
    }
}
