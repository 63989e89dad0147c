//! The recipe file as written: serde structs that mirror the TOML one to one.
//!
//! Every struct denies unknown fields so a misspelt key is an error, not a silently ignored
//! setting. Values that need checks beyond their TOML type keep their source span
//! ([`Spanned`]) so [`crate::Recipe::load`] can point at them. Nothing here applies defaults or
//! touches the file system: that is `validate`'s job.

use serde::Deserialize;
use toml::Spanned;

/// A whole recipe file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeSpec {
    /// `[image]`: the image's name and version.
    pub image: Option<ImageSpec>,
    /// `[rootfs]`: where the packages come from and which to install.
    pub rootfs: RootfsSpec,
    /// `[[files]]`: files copied or written into the tree.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// `[[users]]`: accounts created in the tree.
    #[serde(default)]
    pub users: Vec<UserSpec>,
    /// `[[groups]]`: groups created in the tree (before the users).
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    /// `[services]`: systemd units to enable.
    pub services: Option<ServicesSpec>,
    /// `[[run]]`: commands run inside the tree at build time.
    #[serde(default)]
    pub run: Vec<RunSpec>,
    /// `[kernel]`: which kernel recipe boots this image (used by a later step).
    pub kernel: Option<KernelSpec>,
    /// `[disk]`: the ext4 image's size and label.
    pub disk: Option<DiskSpec>,
    /// `[boot]`: the microVM's shape.
    pub boot: Option<BootSpec>,
    /// `[snapshot]`: whether to take a Firecracker snapshot after boot.
    pub snapshot: Option<SnapshotSpec>,
    /// `[publish]`: where the image is pushed.
    pub publish: Option<PublishSpec>,
}

/// `[image]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// The image name; defaults to the recipe's file stem.
    pub name: Option<Spanned<String>>,
    /// A free-form version string.
    pub version: Option<String>,
}

/// Which distribution a rootfs is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    /// Debian (bookworm and later).
    Debian,
    /// Ubuntu (jammy and later).
    Ubuntu,
}

impl std::fmt::Display for Distro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Distro::Debian => "debian",
            Distro::Ubuntu => "ubuntu",
        })
    }
}

/// The base package set, as mmdebstrap names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// `Essential: yes` packages, `Priority: required` packages and apt.
    Minbase,
    /// Only the `Essential: yes` packages.
    Essential,
}

/// `[rootfs]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootfsSpec {
    /// `debian` or `ubuntu`.
    pub distro: Distro,
    /// The suite (codename), e.g. `bookworm`.
    pub suite: Spanned<String>,
    /// Extra suites of the same archive (e.g. `jammy-updates`), searched with the main one.
    pub extra_suites: Option<Vec<Spanned<String>>>,
    /// Archive components; default [`crate::DEFAULT_COMPONENTS`].
    pub components: Option<Vec<Spanned<String>>>,
    /// Debian architecture; default [`crate::DEFAULT_ARCHITECTURE`].
    pub architecture: Option<Spanned<String>>,
    /// Archive URL; default: the build host's apt sources for `distro`.
    pub mirror: Option<Spanned<String>>,
    /// Keyring for the archive; default per distro ([`crate::DEBIAN_KEYRING`]).
    pub keyring: Option<Spanned<String>>,
    /// Base package set; default [`crate::DEFAULT_VARIANT`].
    pub variant: Option<Variant>,
    /// Extra packages (names, optionally `name=version`).
    #[serde(default)]
    pub packages: Vec<Spanned<String>>,
    /// Extra repositories.
    #[serde(default)]
    pub repositories: Vec<RepositorySpec>,
    /// `/etc/hostname`.
    pub hostname: Option<Spanned<String>>,
    /// What to delete at the end of the build.
    pub cleanup: Option<CleanupSpec>,
    /// Overrides the timestamp clamp (seconds since the epoch).
    pub source_date_epoch: Option<Spanned<i64>>,
}

/// `[[rootfs.repositories]]`: an extra apt repository.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositorySpec {
    /// Repository URL.
    pub url: Spanned<String>,
    /// Suite (distribution) name.
    pub suite: Spanned<String>,
    /// Components; default [`crate::DEFAULT_COMPONENTS`].
    pub components: Option<Vec<Spanned<String>>>,
    /// Signing key file (binary or ASCII-armoured), relative to the recipe.
    pub key: Spanned<String>,
    /// When set, only these packages are taken from this repository.
    pub packages: Option<Vec<Spanned<String>>>,
}

/// `[rootfs.cleanup]`: what to delete from the finished tree.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupSpec {
    /// `/var/lib/apt/lists/*`.
    pub apt_lists: Option<bool>,
    /// `/var/cache/apt/*.bin` and archives.
    pub apt_cache: Option<bool>,
    /// `/var/log/*` files (emptied, not removed, when a package owns them).
    pub logs: Option<bool>,
    /// `/usr/share/doc` except copyright files.
    pub docs: Option<bool>,
    /// `/usr/share/man` and `/usr/share/info`.
    pub man: Option<bool>,
}

/// `[[files]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// A file relative to the recipe (exclusive with `content`).
    pub source: Option<Spanned<String>>,
    /// Inline content (exclusive with `source`).
    pub content: Option<String>,
    /// Absolute path in the image.
    pub destination: Spanned<String>,
    /// Octal permission bits: `"0755"` or `0o755`; default [`crate::DEFAULT_FILE_MODE`].
    pub mode: Option<Spanned<ModeSpec>>,
    /// `"user:group"` names or `"uid:gid"` numbers; default `root:root`.
    pub owner: Option<Spanned<String>>,
}

/// A file mode as written: a TOML integer (`0o755`) or an octal string (`"0755"`).
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "an octal mode like \"0644\" or 0o644")]
pub enum ModeSpec {
    /// `0o755`.
    Int(u32),
    /// `"0755"`.
    Text(String),
}

/// `[[users]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Login name.
    pub name: Spanned<String>,
    /// User id; chosen by `useradd` when absent.
    pub uid: Option<u32>,
    /// Primary group id; a group named like the user is created when absent.
    pub gid: Option<u32>,
    /// Home directory; default `/home/<name>` (created).
    pub home: Option<Spanned<String>>,
    /// Login shell; default [`crate::DEFAULT_SHELL`].
    pub shell: Option<Spanned<String>>,
    /// Supplementary groups.
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    /// A system account (`useradd --system`).
    #[serde(default)]
    pub system: bool,
}

/// `[[groups]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group name.
    pub name: Spanned<String>,
    /// Group id; chosen by `groupadd` when absent.
    pub gid: Option<u32>,
    /// A system group (`groupadd --system`).
    #[serde(default)]
    pub system: bool,
}

/// `[services]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesSpec {
    /// systemd units to enable (wants symlinks from their `[Install] WantedBy=`).
    #[serde(default)]
    pub enable: Vec<Spanned<String>>,
}

/// `[[run]]`: one build-time command inside the tree.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// A shell command line run with `/bin/sh -c` (exclusive with `argv`).
    pub command: Option<Spanned<String>>,
    /// A program and its arguments, run without a shell (exclusive with `command`).
    pub argv: Option<Spanned<Vec<String>>>,
}

/// `[kernel]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    /// A kernel recipe (`kernels/*.toml`), relative to this recipe.
    pub recipe: Spanned<String>,
    /// The kernel command line.
    pub cmdline: Option<String>,
}

/// `[disk]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// `"auto"` or a size like `"2G"`, `"512M"`.
    pub size: Option<Spanned<String>>,
    /// Free space added to an `auto` size: `"20%"` or a size like `"256M"`.
    pub headroom: Option<Spanned<String>>,
    /// The ext4 volume label (at most 16 bytes).
    pub label: Option<Spanned<String>>,
}

/// `[boot]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSpec {
    /// Virtual CPUs; default [`crate::DEFAULT_VCPUS`].
    pub vcpus: Option<Spanned<u32>>,
    /// Guest memory in MiB; default [`crate::DEFAULT_MEMORY_MIB`].
    pub memory_mib: Option<Spanned<u32>>,
    /// The init program; default [`crate::DEFAULT_INIT`].
    pub init: Option<Spanned<String>>,
}

/// `[snapshot]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    /// Take a snapshot after boot.
    #[serde(default)]
    pub enabled: bool,
}

/// `[publish]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    /// OCI repository reference, e.g. `registry.example/images/shadow`.
    pub repository: Spanned<String>,
    /// Tags (channels) moved to the new image, e.g. `["stable"]`.
    #[serde(default)]
    pub channels: Vec<Spanned<String>>,
}
