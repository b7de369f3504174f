//! Tests of `types`: the registry built from descriptors, and user types loaded at run time.

use dsf::prost_reflect::prost_types::{
    DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet, field_descriptor_proto::Label, field_descriptor_proto::Type,
};
use dsf::prost_reflect::{DynamicMessage, Value};
use dsf::proto::net::ooici::play::ListObj;
use dsf::{Checkout, Error, MASTER_BRANCH, Registry, Repository, TypeId};
use prost::Message as _;

fn ident_enum(id: i32, version: i32) -> EnumDescriptorProto {
    EnumDescriptorProto {
        name: Some("_MessageTypeIdentifier".into()),
        value: vec![
            EnumValueDescriptorProto { name: Some("_ID".into()), number: Some(id), options: None },
            EnumValueDescriptorProto { name: Some("_VERSION".into()), number: Some(version), options: None },
        ],
        ..Default::default()
    }
}

fn field(name: &str, number: i32, ty: Type, label: Label, type_name: Option<&str>) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        r#type: Some(ty as i32),
        label: Some(label as i32),
        type_name: type_name.map(str::to_owned),
        ..Default::default()
    }
}

/// A descriptor set declaring `acme.Sensor` (id 90001) with a name and a repeated link.
fn sensor_set(id: i32, version: i32) -> Vec<u8> {
    let file = FileDescriptorProto {
        name: Some("acme/sensor.proto".into()),
        package: Some("acme".into()),
        dependency: vec!["net/ooici/core/link/link.proto".into()],
        message_type: vec![DescriptorProto {
            name: Some("Sensor".into()),
            field: vec![
                field("name", 1, Type::String, Label::Optional, None),
                field("readings", 2, Type::Message, Label::Repeated, Some(".net.ooici.core.link.CASRef")),
            ],
            enum_type: vec![ident_enum(id, version)],
            ..Default::default()
        }],
        syntax: Some("proto2".into()),
        ..Default::default()
    };
    FileDescriptorSet { file: vec![file] }.encode_to_vec()
}

/// Spec §0: the built-in registry knows ION's core, workbench, CDM and test types by id, and
/// helper messages without `_MessageTypeIdentifier` are not object types.
#[test]
fn builtin_types() {
    let r = Registry::builtin();
    for (id, name) in [
        (1, "net.ooici.core.container.StructureElement"),
        (2, "net.ooici.core.container.Structure"),
        (3, "net.ooici.core.link.CASRef"),
        (4, "net.ooici.core.link.IDRef"),
        (5, "net.ooici.core.mutable.Branch"),
        (6, "net.ooici.core.mutable.MutableNode"),
        (7, "net.ooici.core.mutable.ParentRef"),
        (8, "net.ooici.core.mutable.CommitRef"),
        (9, "net.ooici.core.type.GPBType"),
        (11, "net.ooici.core.message.IonMsg"),
        (13, "net.ooici.core.association.Association"),
        (14, "net.ooici.core.association.Terminology"),
        (1102, "net.ooici.services.coi.OOIResource"),
        (41, "net.ooici.core.workbench_messages.PushMessage"),
        (59, "net.ooici.core.workbench_messages.GetLCSResponseMessage"),
        (10009, "net.ooici.cdm.syntactic.int32Array"),
        (10021, "net.ooici.cdm.syntactic.BoundedArray"),
        (10025, "net.ooici.cdm.syntactic.ArrayStructure"),
        (20001, "net.ooici.play.Person"),
        (20010, "net.ooici.play.TestObj"),
    ] {
        let info = r.require(TypeId::new(id, 1)).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(info.name(), name);
        assert_eq!(r.by_name(name), Some(TypeId::new(id, 1)));
    }
    assert!(r.by_name("net.ooici.play.Person.PhoneNumber").is_none());
    assert!(r.by_name("net.ooici.cdm.syntactic.Bounds").is_none());
    assert!(matches!(r.require(TypeId::new(424242, 1)), Err(Error::UnknownType { .. })));
}

/// User types come from a descriptor set at run time: no recompiling. Their links are found
/// like those of built-in types, and they commit and check out.
#[test]
fn user_types_from_a_descriptor_set() {
    let registry = Registry::with_descriptor_set(&sensor_set(90001, 1)).unwrap();
    let ty = registry.by_name("acme.Sensor").unwrap();
    assert_eq!(ty, TypeId::new(90001, 1));
    let mut repo = Repository::new(registry.clone());
    let reading = repo.create(&ListObj { items: vec![] }).unwrap();
    let mut sensor = DynamicMessage::new(registry.require(ty).unwrap().descriptor.clone());
    sensor.set_field_by_name("name", Value::String("ctd-1".into()));
    let link = repo.link(reading).unwrap();
    let link_desc = registry.pool().get_message_by_name("net.ooici.core.link.CASRef").unwrap();
    let link = DynamicMessage::decode(link_desc, link.encode_to_vec().as_slice()).unwrap();
    sensor.set_field_by_name("readings", Value::List(vec![Value::Message(link)]));
    let id = repo.create_dynamic(&sensor).unwrap();
    assert_eq!(repo.children(id).unwrap(), vec![reading]);
    repo.set_root(id).unwrap();
    let commit = repo.commit("a user type").unwrap();
    let root = repo.commit_info(commit).unwrap().root.unwrap();
    assert_eq!(root.ty, ty);
    assert_eq!(repo.elements().get(&root.key).unwrap().children().len(), 1);
    repo.checkout(Checkout::branch(MASTER_BRANCH)).unwrap();
    let loaded = repo.get_dynamic(repo.root().unwrap()).unwrap();
    assert_eq!(loaded.get_field_by_name("name").unwrap().as_str(), Some("ctd-1"));
}

/// Spec §0 and §6: a duplicate type id, a version other than 1, and garbage descriptor bytes
/// are registry errors.
#[test]
fn registry_errors() {
    let dup = Registry::with_descriptor_set(&sensor_set(20001, 1)).unwrap_err();
    assert!(dup.to_string().contains("20001"), "{dup}");
    let v2 = Registry::with_descriptor_set(&sensor_set(90002, 2)).unwrap_err();
    assert!(v2.to_string().contains("version"), "{v2}");
    assert!(matches!(Registry::with_descriptor_set(b"\xff\xff"), Err(Error::Registry(_))));
}
