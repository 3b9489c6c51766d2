//! Path handling as etcd's v2 store does it: `path.Clean(path.Join("/", p))` from Go.

/// Go's `path.Clean(path.Join("/", p))`: a rooted path without empty, `.` or `..`
/// elements and without a trailing slash (`"/"` for the root).
pub fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The components of a cleaned path (`"/a/b"` gives `["a", "b"]`, the root none).
pub fn components(clean_path: &str) -> Vec<&str> {
    clean_path.split('/').filter(|c| !c.is_empty()).collect()
}

/// Go's `path.Join(parent, name)` for a cleaned parent and a plain name.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// etcd's `isHidden` for a node: its last path element starts with `_`.
pub fn is_hidden_name(name: &str) -> bool {
    name.starts_with('_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go_path_clean_of_rooted_join() {
        assert_eq!(clean(""), "/");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("a//b/"), "/a/b");
        assert_eq!(clean("/a/./b/../c"), "/a/c");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(components("/1/a"), vec!["1", "a"]);
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
