//! Request paths normalised before routing, so that a route (and the rate limit or service
//! behind it) cannot be dodged by spelling its path another way: `/%61uth`, `//auth` and
//! `/x/../auth` are `/auth` to most application servers, and so they are here.
//!
//! The steps (RFC 3986 §6.2.2 and §5.2.4, then Envoy's `merge_slashes`): percent-encoded
//! unreserved characters are decoded and every other escape's hex is upper-cased; an encoded
//! `/` or `\` (`%2F`, `%5C`), which servers disagree about, is refused or kept as it is; runs of
//! `/` are merged; `.` and `..` segments are removed. What is forwarded is the normalised path.
//! A path that needs none of it (the common case) is scanned once and not copied.

/// What to do with `%2F` and `%5C` in a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// Answer 400 (the default: no guessing what the instance will make of them).
    Reject,
    /// Keep them encoded (upper-case hex), as one segment.
    Keep,
}

/// How paths are normalised (`[paths]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathPolicy {
    /// Decode unreserved escapes, upper-case the others, remove dot segments.
    pub normalize: bool,
    /// Merge runs of `/` into one.
    pub merge_slashes: bool,
    /// Encoded slashes and backslashes.
    pub escaped_slashes: EscapedSlashes,
}

impl Default for PathPolicy {
    fn default() -> Self {
        PathPolicy {
            normalize: true,
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
        }
    }
}

/// Why a path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// `%2F` or `%5C` under [`EscapedSlashes::Reject`].
    EscapedSlash,
}

impl PathError {
    /// The answer's body.
    pub fn message(self) -> &'static str {
        match self {
            PathError::BadEscape => "the path has a `%` that is not followed by two hex digits\n",
            PathError::EscapedSlash => {
                "the path has an encoded slash or backslash (%2F, %5C), which is refused\n"
            }
        }
    }
}

impl PathPolicy {
    /// The normalised form of `path` (without the query), or `None` when it is already
    /// normal. Paths that do not start with `/` (`*`) are left alone.
    pub fn apply(&self, path: &str) -> Result<Option<String>, PathError> {
        if !path.starts_with('/') || !self.needs_work(path.as_bytes()) {
            return Ok(None);
        }
        let mut p = if self.normalize {
            decode(path, self.escaped_slashes)?
        } else {
            path.to_string()
        };
        if self.merge_slashes {
            p = merge_slashes(&p);
        }
        if self.normalize {
            p = remove_dot_segments(&p);
        }
        Ok((p != path).then_some(p))
    }

    fn needs_work(&self, b: &[u8]) -> bool {
        b.iter().enumerate().any(|(i, &c)| match c {
            b'%' => self.normalize,
            b'/' => {
                let next = b.get(i + 1).copied();
                (self.merge_slashes && next == Some(b'/'))
                    || (self.normalize && next == Some(b'.') && is_dot_segment(&b[i + 1..]))
            }
            _ => false,
        })
    }
}

/// Whether `rest` (after a `/`) starts with a `.` or `..` segment.
fn is_dot_segment(rest: &[u8]) -> bool {
    let seg = rest.split(|&c| c == b'/').next().unwrap_or(&[]);
    seg == b"." || seg == b".."
}

fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn decode(path: &str, slashes: EscapedSlashes) -> Result<String, PathError> {
    let b = path.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            // Not an escape: copy up to the next one (UTF-8 stays whole).
            let end = b[i..]
                .iter()
                .position(|&c| c == b'%')
                .map_or(b.len(), |p| i + p);
            out.push_str(&path[i..end]);
            i = end;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let v = hi << 4 | lo;
        if unreserved(v) {
            out.push(v as char);
        } else if (v == b'/' || v == b'\\') && slashes == EscapedSlashes::Reject {
            return Err(PathError::EscapedSlash);
        } else {
            out.push('%');
            out.push_str(&format!("{v:02X}"));
        }
        i += 3;
    }
    Ok(out)
}

fn merge_slashes(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut last_slash = false;
    for c in p.chars() {
        if c == '/' && last_slash {
            continue;
        }
        last_slash = c == '/';
        out.push(c);
    }
    out
}

/// RFC 3986 §5.2.4 for an absolute path: `.` segments go, `..` takes the one before it (not
/// above the root); a path that ended in a dot segment keeps its trailing `/`.
fn remove_dot_segments(p: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = p[1..].split('/').collect();
    let last = parts.len() - 1;
    for (i, seg) in parts.iter().enumerate() {
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    segments.pop();
                }
                if i == last {
                    segments.push("");
                }
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(p.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        PathPolicy::default()
            .apply(p)
            .map(|n| n.unwrap_or_else(|| p.to_string()))
    }

    #[test]
    fn the_probe_evasions_become_the_route_they_dodged() {
        assert_eq!(norm("/%61uth").unwrap(), "/auth");
        assert_eq!(norm("//auth").unwrap(), "/auth");
        assert_eq!(norm("/auth/../process").unwrap(), "/process");
        assert_eq!(norm("/x/%2e%2E/auth/login").unwrap(), "/auth/login");
        assert_eq!(norm("/./auth//./login/").unwrap(), "/auth/login/");
    }

    #[test]
    fn rfc_3986_examples_and_edges() {
        for (raw, want) in [
            ("/", "/"),
            ("/a/b/c/./../../g", "/a/g"),
            ("/mid/content=5/../6", "/mid/6"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/../../x", "/x"),
            ("/a/.b/..c/...", "/a/.b/..c/..."),
            ("/%7euser/%c3%a9", "/~user/%C3%A9"),
            ("/caf\u{e9}/%41", "/caf\u{e9}/A"),
            ("/a%20b", "/a%20b"),
            ("/a%3a", "/a%3A"),
        ] {
            assert_eq!(norm(raw).unwrap(), want, "{raw}");
        }
        assert_eq!(PathPolicy::default().apply("/auth/login"), Ok(None));
        assert_eq!(PathPolicy::default().apply("*"), Ok(None));
    }

    #[test]
    fn bad_escapes_and_escaped_slashes_are_refused_or_kept() {
        assert_eq!(norm("/a%2"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%2fb"), Err(PathError::EscapedSlash));
        assert_eq!(norm("/a%5Cb"), Err(PathError::EscapedSlash));
        let keep = PathPolicy {
            escaped_slashes: EscapedSlashes::Keep,
            ..PathPolicy::default()
        };
        assert_eq!(keep.apply("/a%2fb/..").unwrap().unwrap(), "/");
        assert_eq!(keep.apply("/a%2fb").unwrap().unwrap(), "/a%2Fb");
    }

    #[test]
    fn each_step_can_be_turned_off() {
        let off = PathPolicy {
            normalize: false,
            merge_slashes: false,
            ..PathPolicy::default()
        };
        assert_eq!(off.apply("//%61/../b"), Ok(None));
        let merge_only = PathPolicy {
            normalize: false,
            ..PathPolicy::default()
        };
        assert_eq!(
            merge_only.apply("//%61/../b").unwrap().unwrap(),
            "/%61/../b"
        );
        let no_merge = PathPolicy {
            merge_slashes: false,
            ..PathPolicy::default()
        };
        assert_eq!(no_merge.apply("//%61/./b").unwrap().unwrap(), "//a/b");
    }

    proptest::proptest! {
        /// Normalising is idempotent, so a path and its normal form choose the same route
        /// (routes compare the normal form), and the normal form has nothing left to dodge
        /// with: no dot segment, no `//`, no escape of an unreserved character.
        #[test]
        fn normal_forms_are_fixed_points(
            segs in proptest::collection::vec(
                proptest::string::string_regex("(\\.|\\.\\.|%2[eE]|%6[1-9]|%2[0-9a-fA-F]|[a-z~_-]{0,3}|%C3%A9)*").unwrap(),
                0..6,
            )
        ) {
            let path = format!("/{}", segs.join("/"));
            if let Ok(n) = norm(&path) {
                proptest::prop_assert_eq!(norm(&n).unwrap(), n.clone(), "{}", path);
                proptest::prop_assert!(!n.contains("//"), "{}", n);
                proptest::prop_assert!(!n.split('/').any(|s| s == "." || s == ".."), "{}", n);
                proptest::prop_assert!(!n.contains("%2E") && !n.contains("%61"), "{}", n);
            }
        }
    }
}
