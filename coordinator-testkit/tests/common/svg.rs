//! A small tree of an SVG document, parsed with quick-xml so that a
//! malformed document (an unescaped `<` or `&`, a tag left open, an
//! attribute twice) fails the test.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// One element: its name, attributes, text (unescaped) and children.
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) attrs: BTreeMap<String, String>,
    pub(crate) text: String,
    pub(crate) children: Vec<Element>,
}

impl Element {
    /// An attribute's value, or "".
    pub(crate) fn attr(&self, name: &str) -> &str {
        self.attrs.get(name).map_or("", String::as_str)
    }

    /// Every element below this one (depth first, in document order).
    pub(crate) fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        for c in &self.children {
            out.push(c);
            out.extend(c.descendants());
        }
        out
    }

    /// Elements below named `name` whose `class` is `class`.
    pub(crate) fn with_class(&self, name: &str, class: &str) -> Vec<&Element> {
        self.descendants()
            .into_iter()
            .filter(|e| e.name == name && e.attr("class") == class)
            .collect()
    }

    /// The text of this element's `<title>` child.
    pub(crate) fn title(&self) -> Option<&str> {
        self.children
            .iter()
            .find(|c| c.name == "title")
            .map(|c| c.text.as_str())
    }
}

fn element(start: &BytesStart<'_>) -> Element {
    let name = String::from_utf8(start.name().as_ref().to_vec()).expect("utf-8 name");
    let mut attrs = BTreeMap::new();
    for a in start.attributes() {
        let a = a.expect("a well-formed attribute");
        let key = String::from_utf8(a.key.as_ref().to_vec()).expect("utf-8 key");
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .expect("an escaped value")
            .into_owned();
        assert!(
            attrs.insert(key.clone(), value).is_none(),
            "attribute {key} twice"
        );
    }
    Element {
        name,
        attrs,
        ..Element::default()
    }
}

/// Parses `svg`; panics unless it is one well-formed `<svg>` element.
pub(crate) fn parse(svg: &str) -> Element {
    let mut reader = Reader::from_str(svg);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(s) => stack.push(element(&s)),
            Event::Empty(s) => {
                let e = element(&s);
                stack.last_mut().expect("a parent").children.push(e);
            }
            Event::End(_) => {
                let e = stack.pop().expect("an open element");
                stack.last_mut().expect("a parent").children.push(e);
            }
            Event::Text(t) => {
                let text = t.decode().expect("utf-8 text");
                stack.last_mut().expect("a parent").text.push_str(&text);
            }
            Event::GeneralRef(r) => {
                let name = r.decode().expect("utf-8 reference").into_owned();
                let c = match name.as_str() {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    n => panic!("entity &{n}; is not one of XML's own"),
                };
                stack.last_mut().expect("a parent").text.push(c);
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stack.len(), 1, "an element left open");
    let mut root = stack.pop().expect("the document");
    assert_eq!(root.children.len(), 1, "one root element");
    let svg = root.children.remove(0);
    assert_eq!(svg.name, "svg");
    assert_eq!(svg.attr("xmlns"), "http://www.w3.org/2000/svg");
    svg
}
