//! Which `__consumer_offsets` partition coordinates a group.
//!
//! Kafka computes `Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions`
//! (`GroupCoordinatorService.partitionFor`). Every client and every broker
//! must agree on this mapping bit for bit: FindCoordinator answers with the
//! leader of this partition, and a group's records must be read back from
//! the same partition after a restart or an upgrade from Kafka. So both the
//! hash (Java's `String.hashCode`, over UTF-16 code units with wrapping
//! 32-bit arithmetic) and the `abs` (Kafka's `Utils.abs`, which maps
//! `i32::MIN` to 0 instead of overflowing) are reproduced exactly.

/// Java's `String.hashCode()`: `s[0]*31^(n-1) + … + s[n-1]` over the UTF-16
/// code units of the string, in wrapping `int` arithmetic.
pub fn java_string_hashcode(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Kafka's `Utils.abs`: the absolute value, except that `i32::MIN` (whose
/// absolute value does not fit) becomes 0. Note that this is not
/// `i32::wrapping_abs`, which would return `i32::MIN`.
pub fn kafka_abs(n: i32) -> i32 {
    if n == i32::MIN {
        0
    } else {
        n.abs()
    }
}

/// The `__consumer_offsets` partition that owns `group_id`.
///
/// # Panics
/// If `num_partitions` is not positive: `offsets.topic.num.partitions` is
/// validated at startup, so a zero here is a programming error.
pub fn partition_for_group(group_id: &str, num_partitions: i32) -> i32 {
    assert!(
        num_partitions > 0,
        "offsets.topic.num.partitions must be positive"
    );
    kafka_abs(java_string_hashcode(group_id)) % num_partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashcode_matches_java_for_known_strings() {
        // Values of "…".hashCode() as computed by the JVM.
        assert_eq!(java_string_hashcode(""), 0);
        assert_eq!(java_string_hashcode("a"), 97);
        assert_eq!(java_string_hashcode("hello"), 99_162_322);
        // Wrapping cases, computed from the definition over UTF-16 units.
        assert_eq!(java_string_hashcode("consumer-group"), -1_738_392_088);
        assert_eq!(java_string_hashcode("my-group"), -1_906_497_762);
    }

    #[test]
    fn hashcode_uses_utf16_code_units() {
        // U+1F600 is the surrogate pair D83D DE00 in UTF-16: 0xD83D*31 + 0xDE00.
        assert_eq!(java_string_hashcode("😀"), 0xD83D * 31 + 0xDE00);
        // "é" is one UTF-16 unit (0xE9) but two UTF-8 bytes.
        assert_eq!(java_string_hashcode("é"), 0xE9);
    }

    #[test]
    fn abs_of_min_value_is_zero_like_kafka_utils_abs() {
        // The famous string whose Java hashCode is Integer.MIN_VALUE.
        assert_eq!(java_string_hashcode("polygenelubricants"), i32::MIN);
        assert_eq!(kafka_abs(i32::MIN), 0);
        assert_eq!(partition_for_group("polygenelubricants", 50), 0);
    }

    #[test]
    fn negative_hash_is_folded_by_abs_before_modulo() {
        let h = java_string_hashcode("consumer-group");
        assert!(h < 0, "test wants a negative hash, got {h}");
        assert_eq!(partition_for_group("consumer-group", 50), (-h) % 50);
        assert_eq!(partition_for_group("consumer-group", 50), 38);
        assert_eq!(partition_for_group("my-group", 50), 12);
        assert_eq!(partition_for_group("hello", 50), 22);
        assert_eq!(partition_for_group("anything", 1), 0);
    }
}
