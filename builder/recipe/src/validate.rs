//! The validated recipe: [`Recipe`] and its sections, built from a [`RecipeSpec`].
//!
//! Validation resolves paths against the recipe's directory (and checks that referenced files
//! exist), applies the `DEFAULT_*` constants, and checks values the TOML types cannot express
//! (absolute destinations, octal modes, owners, sizes, unit names, URLs). Sections that later
//! steps act on (`[kernel]`, `[disk]`, `[boot]`, `[snapshot]`, `[publish]`) are kept as plain
//! data.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::error::RecipeError;
use crate::spec::{
    BootSpec, CleanupSpec, DiskSpec, FileSpec, ModeSpec, RecipeSpec, RepositorySpec, RootfsSpec,
};
pub use crate::spec::{Distro, Variant};

/// Archive components when a recipe names none.
pub const DEFAULT_COMPONENTS: &[&str] = &["main"];
/// Architecture when a recipe names none.
pub const DEFAULT_ARCHITECTURE: &str = "amd64";
/// Base package set when a recipe names none.
pub const DEFAULT_VARIANT: Variant = Variant::Minbase;
/// Debian archive keyring on a Debian build host (package `debian-archive-keyring`).
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Ubuntu archive keyring (package `ubuntu-keyring`, also packaged in Debian).
pub const UBUNTU_KEYRING: &str = "/usr/share/keyrings/ubuntu-archive-keyring.gpg";
/// Mode of a `[[files]]` entry without `mode`.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// Login shell of a `[[users]]` entry without `shell`.
pub const DEFAULT_SHELL: &str = "/bin/bash";
/// `[boot] vcpus` default.
pub const DEFAULT_VCPUS: u32 = 1;
/// `[boot] memory_mib` default.
pub const DEFAULT_MEMORY_MIB: u32 = 512;
/// `[boot] init` default.
pub const DEFAULT_INIT: &str = "/sbin/init";
/// `[disk] headroom` default for `size = "auto"`: this percentage of the tree's size.
pub const DEFAULT_DISK_HEADROOM_PERCENT: u32 = 20;
/// `[disk] label` default.
pub const DEFAULT_DISK_LABEL: &str = "rootfs";
/// Cleanup defaults: apt lists, apt caches and logs go; docs and man pages stay.
pub const DEFAULT_CLEANUP: Cleanup = Cleanup {
    apt_lists: true,
    apt_cache: true,
    logs: true,
    docs: false,
    man: false,
};

/// A validated recipe.
#[derive(Debug, Clone, Serialize)]
pub struct Recipe {
    /// The recipe file.
    pub path: PathBuf,
    /// `[image]`.
    pub image: Image,
    /// `[rootfs]`.
    pub rootfs: Rootfs,
    /// `[[files]]`, in recipe order.
    pub files: Vec<FileEntry>,
    /// `[[groups]]`, in recipe order.
    pub groups: Vec<Group>,
    /// `[[users]]`, in recipe order.
    pub users: Vec<User>,
    /// `[services] enable`.
    pub services: Vec<String>,
    /// `[[run]]`, in recipe order.
    pub run: Vec<RunStep>,
    /// `[kernel]`.
    pub kernel: Option<Kernel>,
    /// `[disk]` (defaults when absent).
    pub disk: Disk,
    /// `[boot]` (defaults when absent).
    pub boot: Boot,
    /// `[snapshot] enabled`.
    pub snapshot: bool,
    /// `[publish]`.
    pub publish: Option<Publish>,
}

/// `[image]`.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    /// Name (default: the recipe's file stem).
    pub name: String,
    /// Version, if given.
    pub version: Option<String>,
}

/// `[rootfs]`, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Rootfs {
    /// Distribution.
    pub distro: Distro,
    /// Main suite.
    pub suite: String,
    /// Further suites of the same archive (updates, security).
    pub extra_suites: Vec<String>,
    /// Components.
    pub components: Vec<String>,
    /// Debian architecture.
    pub architecture: String,
    /// Archive URL; `None`: take the build host's apt sources (or `--mirror`).
    pub mirror: Option<String>,
    /// Archive keyring.
    pub keyring: PathBuf,
    /// Base package set.
    pub variant: Variant,
    /// Extra packages (`name` or `name=version`).
    pub packages: Vec<String>,
    /// Extra repositories.
    pub repositories: Vec<Repository>,
    /// `/etc/hostname`.
    pub hostname: Option<String>,
    /// Cleanup switches.
    pub cleanup: Cleanup,
    /// Timestamp clamp override.
    pub source_date_epoch: Option<i64>,
}

/// An extra apt repository.
#[derive(Debug, Clone, Serialize)]
pub struct Repository {
    /// URL.
    pub url: String,
    /// Suite.
    pub suite: String,
    /// Components.
    pub components: Vec<String>,
    /// Key file (absolute).
    pub key: PathBuf,
    /// Allow-list: when set, only these packages come from this repository.
    pub packages: Option<Vec<String>>,
}

/// What to delete from the finished tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cleanup {
    /// `/var/lib/apt/lists`.
    pub apt_lists: bool,
    /// `/var/cache/apt`.
    pub apt_cache: bool,
    /// `/var/log` files.
    pub logs: bool,
    /// `/usr/share/doc` (copyright files kept).
    pub docs: bool,
    /// `/usr/share/man`, `/usr/share/info`.
    pub man: bool,
}

impl Default for Cleanup {
    fn default() -> Self {
        DEFAULT_CLEANUP
    }
}

/// Where a `[[files]]` entry's bytes come from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileSource {
    /// A file on the build host (absolute).
    Path(PathBuf),
    /// Inline text.
    Content(String),
}

/// An owner as `user:group`, each a name or a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum OwnerId {
    /// Looked up in the image's passwd/group.
    Name(String),
    /// Used as is.
    Id(u32),
}

/// A `[[files]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    /// Source.
    pub source: FileSource,
    /// Absolute path in the image.
    pub destination: PathBuf,
    /// Permission bits (including setuid/setgid/sticky).
    pub mode: u32,
    /// Owning user.
    pub user: OwnerId,
    /// Owning group.
    pub group: OwnerId,
}

/// A `[[users]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: Option<u32>,
    /// Primary group id.
    pub gid: Option<u32>,
    /// Home directory.
    pub home: String,
    /// Shell.
    pub shell: String,
    /// Supplementary groups.
    pub groups: Vec<String>,
    /// System account.
    pub system: bool,
}

/// A `[[groups]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Name.
    pub name: String,
    /// Group id.
    pub gid: Option<u32>,
    /// System group.
    pub system: bool,
}

/// A `[[run]]` step: the argv run inside the tree.
#[derive(Debug, Clone, Serialize)]
pub struct RunStep {
    /// Program and arguments (`["/bin/sh", "-c", command]` for `command`).
    pub argv: Vec<String>,
}

/// `[kernel]`.
#[derive(Debug, Clone, Serialize)]
pub struct Kernel {
    /// Kernel recipe path (absolute; not checked yet: a later step reads it).
    pub recipe: PathBuf,
    /// Command line.
    pub cmdline: Option<String>,
}

/// `[disk] size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DiskSize {
    /// The tree's size plus headroom.
    Auto,
    /// A fixed size in bytes.
    Bytes(u64),
}

/// `[disk] headroom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Headroom {
    /// A percentage of the tree's size.
    Percent(u32),
    /// A fixed number of bytes.
    Bytes(u64),
}

/// `[disk]`.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    /// Size.
    pub size: DiskSize,
    /// Headroom for `Auto`.
    pub headroom: Headroom,
    /// Volume label.
    pub label: String,
}

/// `[boot]`.
#[derive(Debug, Clone, Serialize)]
pub struct Boot {
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Init program.
    pub init: String,
}

/// `[publish]`.
#[derive(Debug, Clone, Serialize)]
pub struct Publish {
    /// OCI repository.
    pub repository: String,
    /// Tags to move.
    pub channels: Vec<String>,
}

impl Recipe {
    /// Reads and validates the recipe at `path`.
    pub fn load(path: &Path) -> std::result::Result<Recipe, RecipeError> {
        let src = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Recipe::parse(&src, path)
    }

    /// Validates recipe text `src` as if read from `path` (relative paths resolve against
    /// `path`'s directory).
    pub fn parse(src: &str, path: &Path) -> std::result::Result<Recipe, RecipeError> {
        let spec: RecipeSpec =
            toml::from_str(src).map_err(|e| RecipeError::from_toml(path, src, &e))?;
        Validator { path, src }.recipe(spec)
    }

    /// A digest (`sha256:<hex>`) of everything in `[rootfs]` that decides which packages are
    /// installed. A lockfile records it to notice a recipe edited after locking. The mirror is
    /// left out on purpose: the same lock builds from any mirror of the archive.
    pub fn rootfs_digest(&self) -> String {
        #[derive(Serialize)]
        struct Inputs<'a> {
            distro: Distro,
            suite: &'a str,
            extra_suites: &'a [String],
            components: &'a [String],
            architecture: &'a str,
            variant: Variant,
            packages: &'a [String],
            repositories: Vec<RepoInputs<'a>>,
        }
        // The key file's location is left out: it differs between checkouts.
        #[derive(Serialize)]
        struct RepoInputs<'a> {
            url: &'a str,
            suite: &'a str,
            components: &'a [String],
            packages: &'a Option<Vec<String>>,
        }
        let r = &self.rootfs;
        let inputs = Inputs {
            distro: r.distro,
            suite: &r.suite,
            extra_suites: &r.extra_suites,
            components: &r.components,
            architecture: &r.architecture,
            variant: r.variant,
            packages: &r.packages,
            repositories: r
                .repositories
                .iter()
                .map(|x| RepoInputs {
                    url: &x.url,
                    suite: &x.suite,
                    components: &x.components,
                    packages: &x.packages,
                })
                .collect(),
        };
        let json = serde_json::to_vec(&inputs).expect("plain data serializes");
        format!("sha256:{}", hex::encode(Sha256::digest(&json)))
    }

    /// The recipe's directory, against which relative paths were resolved.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

struct Validator<'a> {
    path: &'a Path,
    src: &'a str,
}

type Result<T> = std::result::Result<T, RecipeError>;

impl Validator<'_> {
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        msg: impl Into<String>,
    ) -> Result<T> {
        Err(RecipeError::at(self.path, self.src, span, field, msg))
    }

    /// The error for a missing required value: points at the section header.
    fn missing<T>(&self, section: &str, field: &str, msg: &str) -> Result<T> {
        let span = self
            .src
            .find(&format!("[{section}]"))
            .or_else(|| self.src.find(&format!("[[{section}]]")))
            .map_or(0..0, |i| i..i);
        self.err(span, &format!("{section}.{field}"), msg)
    }

    fn base_dir(&self) -> PathBuf {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir.to_path_buf()
        }
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir().join(p)
        }
    }

    /// A path relative to the recipe that must name an existing file.
    fn existing_file(&self, s: &Spanned<String>, field: &str) -> Result<PathBuf> {
        let p = self.resolve(s.get_ref());
        if !p.is_file() {
            return self.err(
                s.span(),
                field,
                format!("{} does not exist or is not a file", p.display()),
            );
        }
        Ok(p)
    }

    fn non_empty(&self, s: &Spanned<String>, field: &str, what: &str) -> Result<String> {
        let v = s.get_ref().trim();
        if v.is_empty() {
            return self.err(
                s.span(),
                field,
                format!("expected {what}, found an empty string"),
            );
        }
        Ok(v.to_string())
    }

    fn name_list(
        &self,
        list: &Option<Vec<Spanned<String>>>,
        field: &str,
        default: &[&str],
    ) -> Result<Vec<String>> {
        match list {
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(items) => items
                .iter()
                .enumerate()
                .map(|(i, s)| self.word(s, &format!("{field}.{i}")))
                .collect(),
        }
    }

    /// A single token: non-empty, no whitespace, no slashes.
    fn word(&self, s: &Spanned<String>, field: &str) -> Result<String> {
        let v = s.get_ref();
        if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '/') {
            return self.err(
                s.span(),
                field,
                format!("expected a name without spaces or slashes, found {v:?}"),
            );
        }
        Ok(v.clone())
    }

    fn url(&self, s: &Spanned<String>, field: &str) -> Result<String> {
        let v = s.get_ref().trim_end_matches('/');
        let ok = ["http://", "https://", "file://"]
            .iter()
            .any(|p| v.starts_with(p) && v.len() > p.len());
        if !ok {
            return self.err(
                s.span(),
                field,
                format!(
                    "expected an http://, https:// or file:// URL, found {:?}",
                    s.get_ref()
                ),
            );
        }
        Ok(v.to_string())
    }

    fn recipe(&self, spec: RecipeSpec) -> Result<Recipe> {
        let image = match spec.image {
            Some(img) => Image {
                name: match &img.name {
                    Some(n) => self.word(n, "image.name")?,
                    None => self.default_name(),
                },
                version: img.version,
            },
            None => Image {
                name: self.default_name(),
                version: None,
            },
        };
        let rootfs = self.rootfs(spec.rootfs)?;
        let files = spec
            .files
            .into_iter()
            .enumerate()
            .map(|(i, f)| self.file(f, i))
            .collect::<Result<Vec<_>>>()?;
        let groups = spec
            .groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| {
                Ok(Group {
                    name: self.account_name(&g.name, &format!("groups.{i}.name"))?,
                    gid: g.gid,
                    system: g.system,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let users = spec
            .users
            .into_iter()
            .enumerate()
            .map(|(i, u)| {
                let name = self.account_name(&u.name, &format!("users.{i}.name"))?;
                let home = match &u.home {
                    Some(h) => self.absolute(h, &format!("users.{i}.home"))?,
                    None => format!("/home/{name}"),
                };
                let shell = match &u.shell {
                    Some(s) => self.absolute(s, &format!("users.{i}.shell"))?,
                    None => DEFAULT_SHELL.to_string(),
                };
                let groups = u
                    .groups
                    .iter()
                    .enumerate()
                    .map(|(j, g)| self.account_name(g, &format!("users.{i}.groups.{j}")))
                    .collect::<Result<Vec<_>>>()?;
                Ok(User {
                    name,
                    uid: u.uid,
                    gid: u.gid,
                    home,
                    shell,
                    groups,
                    system: u.system,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let services = match &spec.services {
            None => Vec::new(),
            Some(s) => s
                .enable
                .iter()
                .enumerate()
                .map(|(i, u)| self.unit(u, &format!("services.enable.{i}")))
                .collect::<Result<Vec<_>>>()?,
        };
        let run = spec
            .run
            .into_iter()
            .enumerate()
            .map(|(i, r)| match (r.command, r.argv) {
                (Some(c), None) => {
                    let cmd = self.non_empty(&c, &format!("run.{i}.command"), "a shell command")?;
                    Ok(RunStep {
                        argv: vec!["/bin/sh".into(), "-c".into(), cmd],
                    })
                }
                (None, Some(a)) => {
                    if a.get_ref().is_empty() || a.get_ref()[0].is_empty() {
                        return self.err(
                            a.span(),
                            &format!("run.{i}.argv"),
                            "expected a non-empty argument list",
                        );
                    }
                    Ok(RunStep {
                        argv: a.into_inner(),
                    })
                }
                (Some(c), Some(_)) => self.err(
                    c.span(),
                    &format!("run.{i}"),
                    "expected either `command` or `argv`, not both",
                ),
                (None, None) => self.missing(
                    "run",
                    "command",
                    "expected `command` (a shell line) or `argv` (a list)",
                ),
            })
            .collect::<Result<Vec<_>>>()?;
        let kernel = spec.kernel.map(|k| Kernel {
            recipe: self.resolve(k.recipe.get_ref()),
            cmdline: k.cmdline,
        });
        let disk = self.disk(spec.disk)?;
        let boot = self.boot(spec.boot)?;
        let publish = match spec.publish {
            None => None,
            Some(p) => Some(Publish {
                repository: self.non_empty(
                    &p.repository,
                    "publish.repository",
                    "an OCI repository",
                )?,
                channels: p
                    .channels
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.tag(c, &format!("publish.channels.{i}")))
                    .collect::<Result<Vec<_>>>()?,
            }),
        };
        Ok(Recipe {
            path: self.path.to_path_buf(),
            image,
            rootfs,
            files,
            groups,
            users,
            services,
            run,
            kernel,
            disk,
            boot,
            snapshot: spec.snapshot.is_some_and(|s| s.enabled),
            publish,
        })
    }

    fn default_name(&self) -> String {
        self.path
            .file_stem()
            .map_or_else(|| "image".to_string(), |s| s.to_string_lossy().into_owned())
    }

    fn rootfs(&self, r: RootfsSpec) -> Result<Rootfs> {
        let suite = self.word(&r.suite, "rootfs.suite")?;
        let extra_suites = r
            .extra_suites
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| self.word(s, &format!("rootfs.extra_suites.{i}")))
            .collect::<Result<Vec<_>>>()?;
        let components = self.name_list(&r.components, "rootfs.components", DEFAULT_COMPONENTS)?;
        let architecture = match &r.architecture {
            Some(a) => self.word(a, "rootfs.architecture")?,
            None => DEFAULT_ARCHITECTURE.to_string(),
        };
        let mirror = r
            .mirror
            .as_ref()
            .map(|m| self.url(m, "rootfs.mirror"))
            .transpose()?;
        let keyring = match &r.keyring {
            Some(k) => self.existing_file(k, "rootfs.keyring")?,
            // The default keyring is the build host's: checked when the build needs it.
            None => PathBuf::from(match r.distro {
                Distro::Debian => DEBIAN_KEYRING,
                Distro::Ubuntu => UBUNTU_KEYRING,
            }),
        };
        let packages = r
            .packages
            .iter()
            .enumerate()
            .map(|(i, p)| self.package(p, &format!("rootfs.packages.{i}")))
            .collect::<Result<Vec<_>>>()?;
        let repositories = r
            .repositories
            .into_iter()
            .enumerate()
            .map(|(i, repo)| self.repository(repo, i))
            .collect::<Result<Vec<_>>>()?;
        let hostname = r
            .hostname
            .as_ref()
            .map(|h| {
                let v = h.get_ref();
                let ok = !v.is_empty()
                    && v.len() <= 64
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                    && !v.starts_with('-');
                if ok {
                    Ok(v.clone())
                } else {
                    self.err(
                        h.span(),
                        "rootfs.hostname",
                        format!("expected a host name (letters, digits, '-', '.'; at most 64), found {v:?}"),
                    )
                }
            })
            .transpose()?;
        let cleanup = cleanup(r.cleanup);
        let source_date_epoch = match &r.source_date_epoch {
            Some(s) if *s.get_ref() < 0 => {
                return self.err(
                    s.span(),
                    "rootfs.source_date_epoch",
                    "expected seconds since 1970 (>= 0)",
                );
            }
            s => s.as_ref().map(|s| *s.get_ref()),
        };
        Ok(Rootfs {
            distro: r.distro,
            suite,
            extra_suites,
            components,
            architecture,
            mirror,
            keyring,
            variant: r.variant.unwrap_or(DEFAULT_VARIANT),
            packages,
            repositories,
            hostname,
            cleanup,
            source_date_epoch,
        })
    }

    /// A package name as Debian allows (`[a-z0-9][a-z0-9+.-]+`), optionally `=version`.
    fn package(&self, s: &Spanned<String>, field: &str) -> Result<String> {
        let v = s.get_ref();
        let name = v.split_once('=').map_or(v.as_str(), |(n, _)| n);
        let ok = name.len() >= 2
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
            && v.split_once('=')
                .is_none_or(|(_, ver)| !ver.is_empty() && !ver.contains(' '));
        if !ok {
            return self.err(
                s.span(),
                field,
                format!("expected a Debian package name (optionally name=version), found {v:?}"),
            );
        }
        Ok(v.clone())
    }

    fn repository(&self, r: RepositorySpec, i: usize) -> Result<Repository> {
        let f = format!("rootfs.repositories.{i}");
        Ok(Repository {
            url: self.url(&r.url, &format!("{f}.url"))?,
            suite: self.non_empty(&r.suite, &format!("{f}.suite"), "a suite name")?,
            components: self.name_list(
                &r.components,
                &format!("{f}.components"),
                DEFAULT_COMPONENTS,
            )?,
            key: self.existing_file(&r.key, &format!("{f}.key"))?,
            packages: r
                .packages
                .as_ref()
                .map(|ps| {
                    ps.iter()
                        .enumerate()
                        .map(|(j, p)| self.package(p, &format!("{f}.packages.{j}")))
                        .collect::<Result<Vec<_>>>()
                })
                .transpose()?,
        })
    }

    fn absolute(&self, s: &Spanned<String>, field: &str) -> Result<String> {
        let v = s.get_ref();
        if !v.starts_with('/') || v.split('/').any(|c| c == "..") {
            return self.err(
                s.span(),
                field,
                format!("expected an absolute path without `..`, found {v:?}"),
            );
        }
        Ok(v.clone())
    }

    fn file(&self, f: FileSpec, i: usize) -> Result<FileEntry> {
        let field = format!("files.{i}");
        let source = match (&f.source, f.content) {
            (Some(s), None) => FileSource::Path(self.existing_file(s, &format!("{field}.source"))?),
            (None, Some(c)) => FileSource::Content(c),
            (Some(s), Some(_)) => {
                return self.err(
                    s.span(),
                    &field,
                    "expected either `source` or `content`, not both",
                );
            }
            (None, None) => {
                return self.err(
                    f.destination.span(),
                    &field,
                    "expected `source` (a file relative to the recipe) or `content` (inline text)",
                );
            }
        };
        let destination = self.absolute(&f.destination, &format!("{field}.destination"))?;
        if destination == "/" || destination.ends_with('/') {
            return self.err(
                f.destination.span(),
                &format!("{field}.destination"),
                "expected a file path, not a directory",
            );
        }
        let mode = match &f.mode {
            None => DEFAULT_FILE_MODE,
            Some(m) => {
                let parsed = match m.get_ref() {
                    ModeSpec::Int(n) => Some(*n),
                    ModeSpec::Text(t) => u32::from_str_radix(t.trim_start_matches("0o"), 8).ok(),
                };
                match parsed {
                    Some(n) if n <= 0o7777 => n,
                    _ => {
                        return self.err(
                            m.span(),
                            &format!("{field}.mode"),
                            "expected an octal mode at most 07777, like \"0644\" or 0o755",
                        );
                    }
                }
            }
        };
        let (user, group) = match &f.owner {
            None => (OwnerId::Id(0), OwnerId::Id(0)),
            Some(o) => self.owner(o, &format!("{field}.owner"))?,
        };
        Ok(FileEntry {
            source,
            destination: PathBuf::from(destination),
            mode,
            user,
            group,
        })
    }

    fn owner(&self, s: &Spanned<String>, field: &str) -> Result<(OwnerId, OwnerId)> {
        let v = s.get_ref();
        let parse = |part: &str| -> Option<OwnerId> {
            if part.is_empty() {
                None
            } else if part.chars().all(|c| c.is_ascii_digit()) {
                part.parse().ok().map(OwnerId::Id)
            } else if is_account_name(part) {
                Some(OwnerId::Name(part.to_string()))
            } else {
                None
            }
        };
        match v
            .split_once(':')
            .and_then(|(u, g)| Some((parse(u)?, parse(g)?)))
        {
            Some(pair) => Ok(pair),
            None => self.err(
                s.span(),
                field,
                format!("expected \"user:group\" (names or numeric ids), found {v:?}"),
            ),
        }
    }

    fn account_name(&self, s: &Spanned<String>, field: &str) -> Result<String> {
        if is_account_name(s.get_ref()) {
            Ok(s.get_ref().clone())
        } else {
            self.err(
                s.span(),
                field,
                format!(
                    "expected an account name ([a-z_][a-z0-9_-]*, at most 32), found {:?}",
                    s.get_ref()
                ),
            )
        }
    }

    fn unit(&self, s: &Spanned<String>, field: &str) -> Result<String> {
        let v = s.get_ref();
        const KINDS: &[&str] = &[
            ".service", ".socket", ".timer", ".target", ".path", ".mount",
        ];
        let ok = KINDS.iter().any(|k| v.ends_with(k) && v.len() > k.len()) && !v.contains('/');
        if !ok {
            return self.err(
                s.span(),
                field,
                format!(
                    "expected a systemd unit name ending in {}, found {v:?}",
                    KINDS.join(", ")
                ),
            );
        }
        Ok(v.clone())
    }

    fn tag(&self, s: &Spanned<String>, field: &str) -> Result<String> {
        let v = s.get_ref();
        let ok = !v.is_empty()
            && v.len() <= 128
            && v.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return self.err(
                s.span(),
                field,
                format!("expected an OCI tag ([A-Za-z0-9_][A-Za-z0-9_.-]*), found {v:?}"),
            );
        }
        Ok(v.clone())
    }

    fn disk(&self, d: Option<DiskSpec>) -> Result<Disk> {
        let d = d.unwrap_or(DiskSpec {
            size: None,
            headroom: None,
            label: None,
        });
        let size = match &d.size {
            None => DiskSize::Auto,
            Some(s) if s.get_ref() == "auto" => DiskSize::Auto,
            Some(s) => match parse_size(s.get_ref()) {
                Some(n) if n > 0 => DiskSize::Bytes(n),
                _ => {
                    return self.err(
                        s.span(),
                        "disk.size",
                        format!(
                            "expected \"auto\" or a size like \"2G\" or \"512M\", found {:?}",
                            s.get_ref()
                        ),
                    );
                }
            },
        };
        let headroom = match &d.headroom {
            None => Headroom::Percent(DEFAULT_DISK_HEADROOM_PERCENT),
            Some(h) => {
                let v = h.get_ref();
                let parsed = match v.strip_suffix('%') {
                    Some(p) => p.parse().ok().filter(|p| *p <= 1000).map(Headroom::Percent),
                    None => parse_size(v).map(Headroom::Bytes),
                };
                match parsed {
                    Some(x) => x,
                    None => {
                        return self.err(h.span(), "disk.headroom", format!("expected a percentage like \"20%\" or a size like \"256M\", found {v:?}"));
                    }
                }
            }
        };
        let label = match &d.label {
            None => DEFAULT_DISK_LABEL.to_string(),
            Some(l) if !l.get_ref().is_empty() && l.get_ref().len() <= 16 => l.get_ref().clone(),
            Some(l) => {
                return self.err(
                    l.span(),
                    "disk.label",
                    "expected 1 to 16 bytes (ext4's limit)",
                );
            }
        };
        Ok(Disk {
            size,
            headroom,
            label,
        })
    }

    fn boot(&self, b: Option<BootSpec>) -> Result<Boot> {
        let Some(b) = b else {
            return Ok(Boot {
                vcpus: DEFAULT_VCPUS,
                memory_mib: DEFAULT_MEMORY_MIB,
                init: DEFAULT_INIT.to_string(),
            });
        };
        let vcpus = match &b.vcpus {
            None => DEFAULT_VCPUS,
            Some(v) if (1..=32).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                return self.err(
                    v.span(),
                    "boot.vcpus",
                    "expected 1 to 32 (Firecracker's limit)",
                );
            }
        };
        let memory_mib = match &b.memory_mib {
            None => DEFAULT_MEMORY_MIB,
            Some(v) if *v.get_ref() >= 32 => *v.get_ref(),
            Some(v) => return self.err(v.span(), "boot.memory_mib", "expected at least 32 MiB"),
        };
        let init = match &b.init {
            None => DEFAULT_INIT.to_string(),
            Some(i) => self.absolute(i, "boot.init")?,
        };
        Ok(Boot {
            vcpus,
            memory_mib,
            init,
        })
    }
}

fn cleanup(c: Option<CleanupSpec>) -> Cleanup {
    let d = DEFAULT_CLEANUP;
    match c {
        None => d,
        Some(c) => Cleanup {
            apt_lists: c.apt_lists.unwrap_or(d.apt_lists),
            apt_cache: c.apt_cache.unwrap_or(d.apt_cache),
            logs: c.logs.unwrap_or(d.logs),
            docs: c.docs.unwrap_or(d.docs),
            man: c.man.unwrap_or(d.man),
        },
    }
}

fn is_account_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Parses `"2G"`, `"512M"`, `"1024K"`, `"4096"` (bytes) with binary multiples.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        (i, 'G' | 'g') => (&s[..i], 1 << 30),
        (i, 'T' | 't') => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[rootfs]\ndistro = \"debian\"\nsuite = \"bookworm\"\n";

    fn parse(src: &str) -> Result<Recipe> {
        Recipe::parse(src, Path::new("/tmp/recipes/x.toml"))
    }

    fn invalid(src: &str) -> (usize, usize, Option<String>, String, String) {
        let err = parse(src).expect_err("recipe should be rejected");
        let text = err.to_string();
        match err {
            RecipeError::Invalid {
                line,
                column,
                field,
                message,
                ..
            } => (line, column, field, message, text),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn test_minimal_recipe_gets_named_defaults() {
        let r = parse(MINIMAL).unwrap();
        assert_eq!(r.image.name, "x");
        assert_eq!(r.rootfs.components, vec!["main"]);
        assert_eq!(r.rootfs.architecture, DEFAULT_ARCHITECTURE);
        assert_eq!(r.rootfs.variant, DEFAULT_VARIANT);
        assert_eq!(r.rootfs.keyring, Path::new(DEBIAN_KEYRING));
        assert_eq!(r.rootfs.cleanup, DEFAULT_CLEANUP);
        assert_eq!(r.disk.size, DiskSize::Auto);
        assert_eq!(r.boot.init, DEFAULT_INIT);
        assert!(r.rootfs.mirror.is_none());
    }

    #[test]
    fn test_syntax_error_names_file_line_and_column() {
        let (line, col, _, msg, text) =
            invalid("[rootfs]\ndistro = \"debian\"\nsuite = bookworm\n");
        assert_eq!((line, col), (3, 9), "{text}");
        assert!(text.starts_with("/tmp/recipes/x.toml:3:9: "), "{text}");
        assert!(msg.contains("expected"), "{msg}");
    }

    #[test]
    fn test_unknown_field_is_named_with_its_position() {
        let (line, col, field, msg, text) = invalid(&format!("{MINIMAL}colour = \"blue\"\n"));
        assert_eq!((line, col), (4, 1), "{text}");
        assert!(msg.contains("unknown field `colour`"), "{msg}");
        assert!(msg.contains("expected"), "{msg}");
        assert_eq!(field.as_deref(), Some("rootfs.colour"), "{text}");
    }

    #[test]
    fn test_wrong_type_says_what_was_expected() {
        let (line, col, field, msg, text) = invalid(&format!("{MINIMAL}packages = \"curl\"\n"));
        assert_eq!((line, col), (4, 12), "{text}");
        assert!(
            msg.contains("invalid type") && msg.contains("expected a sequence"),
            "{msg}"
        );
        assert_eq!(field.as_deref(), Some("rootfs.packages"), "{text}");
    }

    #[test]
    fn test_invalid_variant_lists_the_choices() {
        let (line, col, field, msg, text) = invalid(&format!("{MINIMAL}variant = \"tiny\"\n"));
        assert_eq!((line, col), (4, 11), "{text}");
        assert!(
            msg.contains("tiny") && msg.contains("minbase") && msg.contains("essential"),
            "{msg}"
        );
        assert_eq!(field.as_deref(), Some("rootfs.variant"), "{text}");
    }

    #[test]
    fn test_validation_error_points_at_the_value() {
        let src = format!("{MINIMAL}\n[[files]]\ndestination = \"etc/motd\"\ncontent = \"hi\"\n");
        let (line, col, field, msg, _) = invalid(&src);
        assert_eq!((line, col), (6, 15));
        assert_eq!(field.as_deref(), Some("files.0.destination"));
        assert!(msg.contains("absolute path"), "{msg}");
    }

    #[test]
    fn test_bad_mode_and_owner_are_rejected() {
        let src =
            format!("{MINIMAL}[[files]]\ndestination = \"/a\"\ncontent = \"\"\nmode = \"0999\"\n");
        let (_, _, field, _, _) = invalid(&src);
        assert_eq!(field.as_deref(), Some("files.0.mode"));
        let src =
            format!("{MINIMAL}[[files]]\ndestination = \"/a\"\ncontent = \"\"\nowner = \"root\"\n");
        let (_, _, field, msg, _) = invalid(&src);
        assert_eq!(field.as_deref(), Some("files.0.owner"));
        assert!(msg.contains("user:group"));
    }

    #[test]
    fn test_mode_accepts_string_and_integer_and_owner_ids() {
        let src = format!(
            "{MINIMAL}[[files]]\ndestination = \"/a\"\ncontent = \"\"\nmode = \"4755\"\nowner = \"0:daemon\"\n\
             [[files]]\ndestination = \"/b\"\ncontent = \"\"\nmode = 0o600\n"
        );
        let r = parse(&src).unwrap();
        assert_eq!(r.files[0].mode, 0o4755);
        assert_eq!(r.files[0].user, OwnerId::Id(0));
        assert_eq!(r.files[0].group, OwnerId::Name("daemon".into()));
        assert_eq!(r.files[1].mode, 0o600);
    }

    #[test]
    fn test_missing_source_file_is_reported_relative_to_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        let src =
            format!("{MINIMAL}[[files]]\nsource = \"files/motd\"\ndestination = \"/etc/motd\"\n");
        let err = Recipe::parse(&src, &path).unwrap_err().to_string();
        assert!(err.contains("files/motd does not exist"), "{err}");
        std::fs::create_dir(dir.path().join("files")).unwrap();
        std::fs::write(dir.path().join("files/motd"), "hello").unwrap();
        let r = Recipe::parse(&src, &path).unwrap();
        match &r.files[0].source {
            FileSource::Path(p) => assert_eq!(p, &dir.path().join("files/motd")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_reserved_sections_parse_as_data() {
        let src = format!(
            "{MINIMAL}[kernel]\nrecipe = \"../kernels/k.toml\"\ncmdline = \"console=ttyS0\"\n\
             [disk]\nsize = \"2G\"\nheadroom = \"10%\"\nlabel = \"root\"\n\
             [boot]\nvcpus = 2\nmemory_mib = 1024\n[snapshot]\nenabled = true\n\
             [publish]\nrepository = \"reg.example/img\"\nchannels = [\"stable\"]\n"
        );
        let r = parse(&src).unwrap();
        assert_eq!(
            r.kernel.unwrap().recipe,
            Path::new("/tmp/recipes/../kernels/k.toml")
        );
        assert_eq!(r.disk.size, DiskSize::Bytes(2 << 30));
        assert_eq!(r.disk.headroom, Headroom::Percent(10));
        assert_eq!(r.boot.vcpus, 2);
        assert!(r.snapshot);
        assert_eq!(r.publish.unwrap().channels, vec!["stable"]);
        let (_, _, field, _, _) = invalid(&format!("{MINIMAL}[disk]\nsize = \"lots\"\n"));
        assert_eq!(field.as_deref(), Some("disk.size"));
    }

    #[test]
    fn test_rootfs_digest_follows_package_inputs_but_not_mirror() {
        let a = parse(MINIMAL).unwrap().rootfs_digest();
        let b = parse(&format!(
            "{MINIMAL}mirror = \"http://mirror.invalid/debian\"\n"
        ))
        .unwrap()
        .rootfs_digest();
        let c = parse(&format!("{MINIMAL}packages = [\"curl\"]\n"))
            .unwrap()
            .rootfs_digest();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("sha256:"));
    }

    #[test]
    fn test_run_needs_exactly_one_of_command_or_argv() {
        let r = parse(&format!(
            "{MINIMAL}[[run]]\ncommand = \"echo hi\"\n[[run]]\nargv = [\"/bin/true\"]\n"
        ))
        .unwrap();
        assert_eq!(r.run[0].argv, vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(r.run[1].argv, vec!["/bin/true"]);
        let (_, _, field, _, _) = invalid(&format!(
            "{MINIMAL}[[run]]\ncommand = \"a\"\nargv = [\"b\"]\n"
        ));
        assert_eq!(field.as_deref(), Some("run.0"));
    }

    #[test]
    fn test_shipped_recipes_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes");
        for name in ["debian-12-minimal.toml", "ubuntu-22.04-shadow.toml"] {
            let r = Recipe::load(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
            assert!(!r.rootfs.packages.is_empty(), "{name}");
        }
        let shadow = Recipe::load(&dir.join("ubuntu-22.04-shadow.toml")).unwrap();
        assert_eq!(shadow.rootfs.distro, Distro::Ubuntu);
        assert!(
            shadow
                .services
                .iter()
                .any(|s| s == "shadow-sidecar.service")
        );
        assert!(shadow.rootfs.repositories.iter().any(|r| {
            r.packages
                .as_ref()
                .is_some_and(|p| p.contains(&"nodejs".to_string()))
        }));
        // The kernel recipe it names must exist (the kernel crate parses it).
        let kernel = shadow.kernel.expect("[kernel]");
        assert!(kernel.recipe.is_file(), "{}", kernel.recipe.display());
    }
}
