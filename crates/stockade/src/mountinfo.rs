//! `/proc/PID/mountinfo` (proc(5)), parsed: a pure function at the bottom of the house, used by
//! the cgroup layout, the rootfs, `probe` and `audit`.

/// One line of `/proc/PID/mountinfo` (proc(5)), paths unescaped.
#[derive(Debug, Clone)]
pub struct MountEntry {
    /// `major:minor` of the filesystem.
    pub dev: String,
    /// The path inside the filesystem that is mounted (a bind's source).
    pub root: String,
    pub mountpoint: String,
    /// Per-mount options (`ro`, `nosuid`, ...).
    pub options: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, ...).
    pub optional: Vec<String>,
    pub fstype: String,
    /// Per-superblock options (for cgroup v1: the controllers).
    pub super_options: String,
}

/// Every well-formed line of a mountinfo file, in order.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let unescape = |s: &str| {
        s.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\")
    };
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 6 || post.len() < 3 {
                return None;
            }
            Some(MountEntry {
                dev: pre[2].to_string(),
                root: unescape(pre[3]),
                mountpoint: unescape(pre[4]),
                options: pre[5].split(',').map(String::from).collect(),
                optional: pre[6..].iter().map(|s| s.to_string()).collect(),
                fstype: post[0].to_string(),
                super_options: post[2].to_string(),
            })
        })
        .collect()
}
