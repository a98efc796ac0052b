//! Record format tests. The byte-exact vectors are derived by hand from
//! Kafka's JSON schemas (see the table in the module docs), not from our
//! encoder, so they catch a wrong field order, width or version.

use super::*;

fn offset_value() -> OffsetCommitValue {
    OffsetCommitValue {
        offset: 5,
        leader_epoch: 2,
        metadata: "m".into(),
        commit_timestamp: 1000,
        expire_timestamp: -1,
    }
}

#[test]
fn offset_commit_key_is_byte_exact() {
    let rec = Record::OffsetCommit {
        key: OffsetCommitKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
        },
        value: None,
    };
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x00, 0x01,             // key version 1 (OffsetCommitKey)
        0x00, 0x01, b'g',       // group: int16 length + bytes
        0x00, 0x01, b't',       // topic
        0x00, 0x00, 0x00, 0x07, // partition: int32
    ];
    assert_eq!(&rec.encode_key()[..], expected);
    assert_eq!(rec.encode_value(), None, "tombstone has a null value");
}

#[test]
fn offset_commit_value_v3_is_byte_exact() {
    let rec = Record::OffsetCommit {
        key: OffsetCommitKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        },
        value: Some(offset_value()),
    };
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x00, 0x03,                                     // value version 3
        0, 0, 0, 0, 0, 0, 0, 5,                         // offset: int64
        0, 0, 0, 2,                                     // leaderEpoch: int32 (v3+)
        0x00, 0x01, b'm',                               // metadata: string
        0, 0, 0, 0, 0, 0, 0x03, 0xE8,                   // commitTimestamp: int64 = 1000
    ];
    assert_eq!(&rec.encode_value().unwrap()[..], expected);
}

#[test]
fn offset_commit_value_with_expiry_uses_v1() {
    let mut v = offset_value();
    v.expire_timestamp = 2000;
    let rec = Record::OffsetCommit {
        key: OffsetCommitKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        },
        value: Some(v),
    };
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x00, 0x01,                         // value version 1
        0, 0, 0, 0, 0, 0, 0, 5,             // offset (no leaderEpoch before v3)
        0x00, 0x01, b'm',                   // metadata
        0, 0, 0, 0, 0, 0, 0x03, 0xE8,       // commitTimestamp
        0, 0, 0, 0, 0, 0, 0x07, 0xD0,       // expireTimestamp = 2000 (v1 only)
    ];
    let bytes = rec.encode_value().unwrap();
    assert_eq!(&bytes[..], expected);
    // v1 does not carry the leader epoch, so it reads back as -1.
    let back = OffsetCommitValue::decode(&bytes).unwrap();
    assert_eq!(back.leader_epoch, -1);
    assert_eq!(back.expire_timestamp, 2000);
}

#[test]
fn offset_commit_value_v4_flexible_decodes() {
    #[rustfmt::skip]
    let bytes: &[u8] = &[
        0x00, 0x04,                         // value version 4 (flexible)
        0, 0, 0, 0, 0, 0, 0, 5,             // offset
        0, 0, 0, 2,                         // leaderEpoch
        0x02, b'm',                         // compact string: uvarint(len + 1)
        0, 0, 0, 0, 0, 0, 0x03, 0xE8,       // commitTimestamp
        0x01, 0x05, 0x02, 0xAA, 0xBB,       // one unknown tagged field (tag 5, 2 bytes), skipped
    ];
    assert_eq!(OffsetCommitValue::decode(bytes).unwrap(), offset_value());
    assert_eq!(
        &offset_value().encode(4)[..bytes.len() - 5],
        &bytes[..bytes.len() - 5]
    );
}

#[test]
fn offset_commit_value_round_trips_every_version() {
    for version in 0..=4 {
        let mut v = offset_value();
        if version < 3 {
            v.leader_epoch = -1;
        }
        if version == 1 {
            v.expire_timestamp = 99;
        }
        assert_eq!(
            OffsetCommitValue::decode(&v.encode(version)).unwrap(),
            v,
            "v{version}"
        );
    }
}

fn group_value() -> GroupMetadataValue {
    GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation: 3,
        protocol: Some("range".into()),
        leader: Some("m1".into()),
        current_state_timestamp: 1_700_000_000_000,
        members: vec![MemberMetadata {
            member_id: "m1".into(),
            group_instance_id: Some("i1".into()),
            client_id: "c".into(),
            client_host: "/h".into(),
            rebalance_timeout: 300_000,
            session_timeout: 45_000,
            subscription: Bytes::from_static(&[1, 2]),
            assignment: Bytes::from_static(&[3]),
        }],
    }
}

#[test]
fn group_metadata_key_and_value_v3_are_byte_exact() {
    let rec = Record::GroupMetadata {
        group: "g1".into(),
        value: Some(GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 256,
            members: vec![MemberMetadata {
                member_id: "m1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout: 1,
                session_timeout: 2,
                subscription: Bytes::from_static(&[9]),
                assignment: Bytes::new(),
            }],
        }),
    };
    assert_eq!(&rec.encode_key()[..], &[0x00, 0x02, 0x00, 0x02, b'g', b'1']);
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x00, 0x03,                                         // value version 3
        0x00, 0x08, b'c', b'o', b'n', b's', b'u', b'm', b'e', b'r', // protocolType
        0, 0, 0, 3,                                         // generation
        0x00, 0x05, b'r', b'a', b'n', b'g', b'e',           // protocol (nullable string)
        0x00, 0x02, b'm', b'1',                             // leader (nullable string)
        0, 0, 0, 0, 0, 0, 0x01, 0x00,                       // currentStateTimestamp (v2+) = 256
        0, 0, 0, 1,                                         // members: int32 count
        0x00, 0x02, b'm', b'1',                             //   memberId
        0xFF, 0xFF,                                         //   groupInstanceId = null (v3+)
        0x00, 0x01, b'c',                                   //   clientId
        0x00, 0x02, b'/', b'h',                             //   clientHost
        0, 0, 0, 1,                                         //   rebalanceTimeout (v1+)
        0, 0, 0, 2,                                         //   sessionTimeout
        0, 0, 0, 1, 9,                                      //   subscription: int32 length + bytes
        0, 0, 0, 0,                                         //   assignment: empty
    ];
    assert_eq!(&rec.encode_value().unwrap()[..], expected);
}

#[test]
fn group_metadata_value_round_trips_every_version() {
    for version in 0..=4 {
        let mut v = group_value();
        if version < 3 {
            v.members[0].group_instance_id = None;
        }
        if version < 2 {
            v.current_state_timestamp = -1;
        }
        if version < 1 {
            v.members[0].rebalance_timeout = v.members[0].session_timeout;
        }
        assert_eq!(
            GroupMetadataValue::decode(&v.encode(version)).unwrap(),
            v,
            "v{version}"
        );
    }
}

#[test]
fn empty_group_with_null_protocol_and_leader_round_trips() {
    let rec = Record::GroupMetadata {
        group: "g".into(),
        value: Some(GroupMetadataValue {
            protocol_type: String::new(),
            generation: 0,
            protocol: None,
            leader: None,
            current_state_timestamp: 5,
            members: vec![],
        }),
    };
    let back = Record::decode(&rec.encode_key(), rec.encode_value().as_deref()).unwrap();
    assert_eq!(back, rec);
}

#[test]
fn records_round_trip_through_decode_including_tombstones() {
    let recs = [
        Record::OffsetCommit {
            key: OffsetCommitKey {
                group: "g".into(),
                topic: "topic-ü".into(),
                partition: 12,
            },
            value: Some(offset_value()),
        },
        Record::OffsetCommit {
            key: OffsetCommitKey {
                group: "g".into(),
                topic: "t".into(),
                partition: 1,
            },
            value: None,
        },
        Record::GroupMetadata {
            group: "g".into(),
            value: Some(group_value()),
        },
        Record::GroupMetadata {
            group: "g".into(),
            value: None,
        },
    ];
    for rec in recs {
        let back = Record::decode(&rec.encode_key(), rec.encode_value().as_deref()).unwrap();
        assert_eq!(back, rec);
    }
}

#[test]
fn key_version_zero_is_read_as_offset_commit() {
    let key = [0x00, 0x00, 0x00, 0x01, b'g', 0x00, 0x01, b't', 0, 0, 0, 3];
    let rec = Record::decode(&key, None).unwrap();
    assert_eq!(
        rec,
        Record::OffsetCommit {
            key: OffsetCommitKey {
                group: "g".into(),
                topic: "t".into(),
                partition: 3
            },
            value: None
        }
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert_eq!(Record::decode(&[0x00], None), Err(RecordError::MissingKey));
    assert_eq!(
        Record::decode(&[0x00, 0x10, 0x00, 0x01, b'g'], None),
        Err(RecordError::UnsupportedRecordType(16))
    );
    let key = Record::GroupMetadata {
        group: "g".into(),
        value: None,
    }
    .encode_key();
    assert_eq!(
        Record::decode(&key, Some(&[0x00, 0x09])),
        Err(RecordError::UnsupportedValueVersion {
            key_version: 2,
            version: 9
        })
    );
    // Every truncation of a valid value fails cleanly.
    let full = group_value().encode(3);
    for cut in 0..full.len() {
        assert!(
            GroupMetadataValue::decode(&full[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let full = offset_value().encode(4);
    for cut in 0..full.len() {
        assert!(
            OffsetCommitValue::decode(&full[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // A huge member count does not allocate.
    let mut huge = vec![0x00, 0x03, 0x00, 0x00, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
    huge.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF]);
    assert_eq!(
        GroupMetadataValue::decode(&huge),
        Err(RecordError::Truncated)
    );
}

#[test]
fn consumer_member_metadata_with_classic_metadata_is_byte_exact() {
    let value = ConsumerMemberMetadataValue {
        instance_id: None,
        rack_id: None,
        client_id: "c".into(),
        client_host: "h".into(),
        subscribed_topic_names: vec!["t".into()],
        subscribed_topic_regex: None,
        rebalance_timeout_ms: 1000,
        server_assignor: None,
        classic_member_metadata: Some(ClassicMemberMetadataValue {
            session_timeout_ms: 10_000,
            supported_protocols: vec![("range".into(), Bytes::from_static(&[0xab]))],
        }),
    };
    let expected: Vec<u8> = [
        &[0, 0][..],                           // value version 0
        &[0, 0],                               // instance id, rack id: null
        &[2, b'c', 2, b'h'],                   // client id, client host
        &[2, 2, b't'],                         // subscribed topics ["t"]
        &[0],                                  // regex: null
        &[0, 0, 0x03, 0xe8],                   // rebalance timeout 1000
        &[0],                                  // server assignor: null
        &[1, 0, 16],                           // one tagged field: tag 0, 16 bytes
        &[1],                                  // present (nullable struct)
        &[0, 0, 0x27, 0x10],                   // session timeout 10000
        &[2, 6, b'r', b'a', b'n', b'g', b'e'], // protocols: ["range"
        &[2, 0xab, 0],                         //   metadata, no tags]
        &[0],                                  // struct's tagged fields
    ]
    .concat();
    assert_eq!(value.encode().to_vec(), expected);
    assert_eq!(
        ConsumerMemberMetadataValue::decode(&expected).unwrap(),
        value
    );
    // Without classic metadata there is no tagged field, and a value
    // Kafka wrote with the tag decodes the same either way.
    let plain = ConsumerMemberMetadataValue {
        classic_member_metadata: None,
        ..value.clone()
    };
    assert_eq!(*plain.encode().last().unwrap(), 0);
    assert_eq!(
        ConsumerMemberMetadataValue::decode(&plain.encode()).unwrap(),
        plain
    );
    // A truncated tagged struct is an error, not a panic.
    let mut cut = expected.clone();
    cut.truncate(expected.len() - 3);
    assert!(ConsumerMemberMetadataValue::decode(&cut).is_err());
}
