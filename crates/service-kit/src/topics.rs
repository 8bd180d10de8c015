//! Judging how well a Kafka topic survives the loss of a broker, from the
//! numbers a service read itself (partition replicas from metadata,
//! `min.insync.replicas` from the topic's configuration): the tailer's
//! `check` and the payment service's start-up give the same warnings.

/// What is wrong with a topic's replication on a cluster of `brokers`
/// brokers; empty when nothing is (or when one broker is all there is).
/// `replicas` is the fewest replicas any partition has; `min_isr` the
/// topic's `min.insync.replicas`, or why it could not be read.
pub fn durability_warnings(
    topic: &str,
    replicas: usize,
    min_isr: &Result<i32, String>,
    brokers: usize,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if brokers < 2 {
        return warnings;
    }
    if replicas < 2 {
        warnings.push(format!(
            "topic {topic} has replication factor {replicas} on a cluster of {brokers} brokers: \
             losing the broker that holds a partition loses the events it acknowledged; \
             recreate the topic (or reassign its partitions) with replication factor 3"
        ));
    }
    match min_isr {
        Ok(n) if usize::try_from(*n).unwrap_or(0) > replicas => warnings.push(format!(
            "topic {topic} has min.insync.replicas={n} but {replicas} replica(s): every \
             acks=all write to it is refused (NOT_ENOUGH_REPLICAS); lower min.insync.replicas \
             to at most {replicas}, or recreate the topic with replication factor 3"
        )),
        Ok(1) if replicas >= 2 => warnings.push(format!(
            "topic {topic} has min.insync.replicas=1: acks=all is then met by the leader \
             alone once the followers fall behind, and an event it acknowledged is lost if that \
             broker is lost for good before a follower copied it; set it to 2 (kafka-configs --alter --entity-type topics --entity-name \
             {topic} --add-config min.insync.replicas=2)"
        )),
        Err(e) => warnings.push(format!(
            "min.insync.replicas of topic {topic} could not be read ({e}); allow \
             DescribeConfigs on it, or check it by hand"
        )),
        Ok(_) => {}
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_broker_losses_that_hurt_are_named() {
        // One broker: nothing better is possible.
        assert!(durability_warnings("t", 1, &Ok(1), 1).is_empty());
        // Three replicas, two in sync: what a cluster should have.
        assert!(durability_warnings("t", 3, &Ok(2), 3).is_empty());
        let rf1 = durability_warnings("t", 1, &Ok(1), 3).join("; ");
        assert!(rf1.contains("replication factor 1"), "{rf1}");
        assert!(!rf1.contains("min.insync.replicas=1"), "{rf1}");
        let isr1 = durability_warnings("t", 3, &Ok(1), 3).join("; ");
        assert!(isr1.contains("min.insync.replicas=2"), "{isr1}");
        let never = durability_warnings("t", 1, &Ok(2), 3).join("; ");
        assert!(never.contains("NOT_ENOUGH_REPLICAS"), "{never}");
        let unknown = durability_warnings("t", 3, &Err("denied".into()), 3).join("; ");
        assert!(unknown.contains("denied"), "{unknown}");
    }
}
