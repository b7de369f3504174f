//! A repository's in-memory index of elements: key → element, with byte accounting.

use std::collections::HashMap;

use crate::element::Element;
use crate::key::Key;

/// Elements by key. Insertion is idempotent: equal keys mean equal content.
#[derive(Debug, Default, Clone)]
pub struct Elements {
    map: HashMap<Key, Element>,
    bytes: usize,
    /// Keys inserted since the last `take_unsaved`, in insertion order.
    unsaved: Vec<Key>,
}

impl Elements {
    /// The element with this key, if present.
    pub fn get(&self, key: &Key) -> Option<&Element> {
        self.map.get(key)
    }

    /// True if the key is present.
    pub fn contains(&self, key: &Key) -> bool {
        self.map.contains_key(key)
    }

    /// Adds an element; returns false if it was already present. A new element counts as
    /// unsaved until [`Elements::take_unsaved`].
    pub fn insert(&mut self, element: Element) -> bool {
        let key = element.key();
        let added = self.insert_saved(element);
        if added {
            self.unsaved.push(key);
        }
        added
    }

    /// Adds an element that is already stored.
    pub(crate) fn insert_saved(&mut self, element: Element) -> bool {
        use std::collections::hash_map::Entry;
        match self.map.entry(element.key()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                self.bytes += element.encoded_len();
                slot.insert(element);
                true
            }
        }
    }

    /// The elements added since the last call, in insertion order (children before parents,
    /// commits after their objects), and forgets them.
    pub(crate) fn take_unsaved(&mut self) -> Vec<Element> {
        std::mem::take(&mut self.unsaved).into_iter().filter_map(|k| self.map.get(&k).cloned()).collect()
    }

    /// True if elements were added since the last [`Elements::take_unsaved`].
    pub(crate) fn has_unsaved(&self) -> bool {
        !self.unsaved.is_empty()
    }

    /// Removes an element.
    pub fn remove(&mut self, key: &Key) -> Option<Element> {
        let e = self.map.remove(key)?;
        self.bytes -= e.encoded_len();
        Some(e)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The sum of the elements' encoded sizes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Every element, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Element> {
        self.map.values()
    }

    /// Every key reachable from `roots` (roots included), each once, in breadth-first order,
    /// not descending into elements whose type is in `excluded` (those are still listed), and
    /// skipping keys that are absent.
    pub fn reachable(&self, roots: &[Key], excluded: &[crate::types::TypeId]) -> Vec<Key> {
        let mut seen: std::collections::HashSet<Key> = std::collections::HashSet::new();
        let mut order = Vec::new();
        let mut queue: std::collections::VecDeque<Key> = roots.iter().copied().collect();
        while let Some(k) = queue.pop_front() {
            if !seen.insert(k) {
                continue;
            }
            let Some(e) = self.map.get(&k) else { continue };
            order.push(k);
            if excluded.contains(&e.ty()) && !roots.contains(&k) {
                continue;
            }
            queue.extend(e.children().iter().copied());
        }
        order
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
        self.unsaved.clear();
    }
}
