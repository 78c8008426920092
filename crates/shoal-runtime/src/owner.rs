//! Who a task the runtime holds belongs to. The agent runs the tasks the managers assign
//! (25-character IDs) and treats any other task of that shape it finds as a stray; the node's
//! engine runs standalone containers (`docker run`) through the same drivers, with their
//! 64-hex container IDs as task IDs, which the agent leaves alone.

use shoal_types::Id;

/// Whether `task` is a standalone container's (a 64-hex ID) rather than an assigned task's.
pub fn is_standalone(task: &Id) -> bool {
    let s = task.as_str();
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_standalone_and_task_ids_are_not() {
        assert!(is_standalone(&Id::from_raw("a".repeat(64))));
        assert!(!is_standalone(&Id::from_raw("a".repeat(25))));
        assert!(!is_standalone(&Id::from_raw("A".repeat(64))));
        assert!(!is_standalone(&Id::from_raw("z".repeat(64))));
    }
}
