//! The `user` field of a container spec (`name`, `uid`, `uid:gid`, `name:group`) and extra
//! `groups`, resolved to numeric ids against passwd/group files as runc does: a known name gives
//! its uid and primary gid, a number needs no entry (gid 0 unless given), and the supplementary
//! groups are the groups listing the user as a member plus the spec's extra groups. Pure apart
//! from [`resolve_host`], which reads the node's own `/etc/passwd` and `/etc/group`.

use super::layout::Creds;

#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `user` and `groups` against the contents of a passwd and a group file. An empty
/// `user` means root. Errors are Docker's messages and name what was not found.
pub(crate) fn resolve(
    user: &str,
    groups: &[String],
    passwd: &str,
    group: &str,
) -> Result<Creds, String> {
    let passwd = parse_passwd(passwd);
    let group_db = parse_group(group);
    let user = user.trim();
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let entry = passwd.iter().find(|e| e.name == user_part).or_else(|| {
        user_part
            .parse::<u32>()
            .ok()
            .and_then(|uid| passwd.iter().find(|e| e.uid == uid))
    });
    let (uid, mut gid, name) = match (entry, user_part.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name.clone())),
        (None, Ok(uid)) => (uid, 0, None),
        (None, Err(_)) => {
            return Err(format!(
                "unable to find user {user_part}: no matching entries in passwd file"
            ));
        }
    };

    let lookup_group = |g: &str| -> Result<u32, String> {
        if let Some(e) = group_db.iter().find(|e| e.name == g) {
            return Ok(e.gid);
        }
        g.parse::<u32>()
            .map_err(|_| format!("unable to find group {g}: no matching entries in group file"))
    };
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = lookup_group(g)?;
    }

    let mut supplementary: Vec<u32> = Vec::new();
    if let Some(name) = &name {
        for g in group_db
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name))
        {
            supplementary.push(g.gid);
        }
    }
    for g in groups {
        supplementary.push(lookup_group(g.trim())?);
    }
    supplementary.sort_unstable();
    supplementary.dedup();
    Ok(Creds {
        uid,
        gid,
        groups: supplementary,
    })
}

/// Resolves against the node's own files (the `host` image runs on the node's filesystem).
pub(crate) fn resolve_host(user: &str, groups: &[String]) -> Result<Creds, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    resolve(user, groups, &passwd, &group)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          # a comment\n\
                          daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                          alice:x:1000:1000::/home/alice:/bin/sh\n\
                          broken line\n";
    const GROUP: &str = "root:x:0:\n\
                         daemon:x:1:\n\
                         wheel:x:10:alice,bob\n\
                         docker:x:999:alice\n\
                         alice:x:1000:\n\
                         nogroup:x:65534:\n";

    fn r(user: &str, groups: &[&str]) -> Result<(u32, u32, Vec<u32>), String> {
        let groups: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
        resolve(user, &groups, PASSWD, GROUP).map(|c| (c.uid, c.gid, c.groups))
    }

    #[test]
    fn empty_user_is_root() {
        assert_eq!(r("", &[]), Ok((0, 0, vec![])));
    }

    #[test]
    fn name_gives_uid_primary_gid_and_memberships() {
        assert_eq!(r("alice", &[]), Ok((1000, 1000, vec![10, 999])));
        assert_eq!(r("nobody", &[]), Ok((65534, 65534, vec![])));
    }

    #[test]
    fn numeric_forms() {
        assert_eq!(
            r("1000", &[]),
            Ok((1000, 1000, vec![10, 999])),
            "known uid uses its entry"
        );
        assert_eq!(
            r("4242", &[]),
            Ok((4242, 0, vec![])),
            "unknown uid needs no entry"
        );
        assert_eq!(r("4242:77", &[]), Ok((4242, 77, vec![])));
        assert_eq!(r("alice:daemon", &[]), Ok((1000, 1, vec![10, 999])));
        assert_eq!(
            r("nobody:nogroup", &["wheel", "5"]),
            Ok((65534, 65534, vec![5, 10]))
        );
    }

    #[test]
    fn unknown_names_are_errors_naming_them() {
        assert_eq!(
            r("mallory", &[]),
            Err("unable to find user mallory: no matching entries in passwd file".into())
        );
        assert_eq!(
            r("alice:nosuch", &[]),
            Err("unable to find group nosuch: no matching entries in group file".into())
        );
        assert_eq!(
            r("alice", &["ghosts"]),
            Err("unable to find group ghosts: no matching entries in group file".into())
        );
    }
}
