//! DSF message content: a `Structure` whose head is an `IonMsg` linking to the payload
//! (spec §1.5), decoded into checked accessors and built without a workspace.

use std::collections::HashMap;

use bytes::Bytes;
use dsf::proto::Identified;
use dsf::proto::net::ooici::core::link::CasRef;
use dsf::proto::net::ooici::core::message::IonMsg;
use dsf::proto::net::ooici::core::message::ion_msg::ResponseCodes;
use dsf::proto::net::ooici::core::r#type::GpbType;
use dsf::structure::{self, Envelope};
use dsf::{Element, HashAlgorithm, Key, Registry, TypeId};
use prost::Message as _;

use crate::error::ServiceError;

/// Received content: the `IonMsg` head and every element of the envelope, verified.
#[derive(Debug)]
pub struct Content {
    /// The decoded `IonMsg`.
    pub msg: IonMsg,
    items: HashMap<Key, Element>,
    registry: Registry,
}

impl Content {
    /// Decodes and verifies content. Anything but a `Structure` headed by an `IonMsg` is a
    /// bad request.
    pub fn decode(registry: &Registry, bytes: &[u8]) -> Result<Content, ServiceError> {
        let env = Envelope::decode(registry, bytes).map_err(|e| ServiceError::bad_request(e.to_string()))?;
        if env.head.ty() != TypeId::ION_MSG {
            return Err(ServiceError::bad_request(format!(
                "the content's head is of type {}, not an IonMsg ({})",
                env.head.ty(),
                TypeId::ION_MSG
            )));
        }
        let msg: IonMsg = env.head.decode_as().map_err(|e| ServiceError::bad_request(e.to_string()))?;
        Ok(Content { msg, items: env.items, registry: registry.clone() })
    }

    /// The response code (OK when absent).
    pub fn code(&self) -> ResponseCodes {
        self.msg.response_code.and_then(|c| ResponseCodes::try_from(c).ok()).unwrap_or(ResponseCodes::Ok)
    }

    /// The payload, which must be of type `T` (else 400, as ION validates payload types).
    pub fn payload<T: Identified>(&self) -> Result<T, ServiceError> {
        let link = self.msg.message_object.as_ref().ok_or_else(|| {
            ServiceError::bad_request(format!("the message carries no payload; expected {}", T::FULL_NAME))
        })?;
        let e = self.linked(link)?;
        if e.ty() != TypeId::of::<T>() {
            return Err(ServiceError::bad_request(format!(
                "wrong message type: expected {} ({}), got type {}",
                T::FULL_NAME,
                TypeId::of::<T>(),
                e.ty()
            )));
        }
        e.decode_as().map_err(|e| ServiceError::bad_request(e.to_string()))
    }

    /// The element a link of the payload points at.
    pub fn linked(&self, link: &CasRef) -> Result<&Element, ServiceError> {
        let key = Key::from_slice(&link.key).ok_or_else(|| ServiceError::bad_request("a link key has a bad length"))?;
        self.items
            .get(&key)
            .ok_or_else(|| ServiceError::bad_request(format!("linked element {key} is not in the message")))
    }

    /// The element carried as data (double wrapped) behind a link, unwrapped and verified.
    pub fn unwrapped(&self, link: &CasRef) -> Result<Element, ServiceError> {
        let outer = self.linked(link)?;
        structure::unwrap(&self.registry, outer).map_err(|e| ServiceError::bad_request(e.to_string()))
    }

    /// Every element of the envelope but its head.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.items.values()
    }

    /// Every element carried as data behind `links`.
    pub fn unwrap_all(&self, links: &[CasRef]) -> Result<Vec<Element>, ServiceError> {
        links.iter().map(|l| self.unwrapped(l)).collect()
    }
}

/// Builds content: payload objects are added with their linked elements, then wrapped in an
/// `IonMsg` and a `Structure`.
#[derive(Debug, Default)]
pub struct ContentBuilder {
    items: HashMap<Key, Element>,
}

/// The message envelope's own elements are SHA-1 keyed, as ION's.
const ALG: HashAlgorithm = HashAlgorithm::Sha1;

impl ContentBuilder {
    /// An empty builder.
    pub fn new() -> ContentBuilder {
        ContentBuilder::default()
    }

    /// Adds an element carried as data (double wrapped, spec §1.5) and returns the link to it.
    pub fn wrapped(&mut self, inner: &Element) -> CasRef {
        self.add(structure::wrap(ALG, inner))
    }

    /// Adds an element and returns a link to it.
    pub fn add(&mut self, e: Element) -> CasRef {
        let link = link_to(&e);
        self.items.entry(e.key()).or_insert(e);
        link
    }

    /// Adds an object of a generated type (its links must point at elements added before).
    pub fn object<T: Identified>(&mut self, obj: &T, children: Vec<Key>) -> CasRef {
        self.add(Element::new(ALG, TypeId::of::<T>(), obj.encode_to_vec(), children))
    }

    /// The content: an `IonMsg` with this code (and body) linking to `payload`.
    pub fn finish<T: Identified>(mut self, payload: &T, children: Vec<Key>) -> Bytes {
        let link = self.object(payload, children);
        self.finish_with(Some(link), ResponseCodes::Ok, None)
    }

    /// The content of a reply with no payload: an empty `IonMsg` with a code (and body).
    pub fn empty(code: ResponseCodes, body: Option<String>) -> Bytes {
        ContentBuilder::new().finish_with(None, code, body)
    }

    fn finish_with(self, payload: Option<CasRef>, code: ResponseCodes, body: Option<String>) -> Bytes {
        let children = payload.iter().filter_map(|l| Key::from_slice(&l.key)).collect();
        let msg = IonMsg {
            name: None,
            identity: Some(uuid::Uuid::new_v4().to_string().to_uppercase()),
            message_object: payload,
            response_code: Some(code as i32),
            response_body: body,
        };
        let head = Element::new(ALG, TypeId::ION_MSG, msg.encode_to_vec(), children);
        Envelope { head, items: self.items }.encode().into()
    }
}

/// A link to an element.
pub fn link_to(e: &Element) -> CasRef {
    CasRef { key: e.key().as_bytes().to_vec(), r#type: gpb_type(e.ty()), isleaf: e.is_leaf() }
}

/// A type id as ION's `GPBType`.
pub fn gpb_type(ty: TypeId) -> GpbType {
    GpbType { object_id: ty.object_id, version: ty.version }
}

/// A `GPBType` as a type id.
pub fn type_id(t: &GpbType) -> TypeId {
    TypeId::new(t.object_id, t.version)
}
