//! OCI artifacts end to end against real servers on loopback: Debian's
//! `docker-registry` (plain HTTP, htpasswd basic auth, TLS with a CA made by
//! openssl), `skopeo` as an independent client, `moto_server` as the ECR
//! control plane, a TCP proxy that drops or corrupts traffic, and an HTTP
//! proxy that refuses OCI 1.1 `artifactType` manifests like older registries.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};
use vmimage_tests::proxy::{Direction, Fault, FaultProxy};
use vmimage_tests::registry::{MotoServer, RegistryConfig, TestRegistry, free_port};
use vmimage_tests::{vmimage, which};

/// Input files for one image.
struct Fixture {
    dir: tempfile::TempDir,
    kernel: PathBuf,
    rootfs: PathBuf,
    snapshot: PathBuf,
    sbom: PathBuf,
}

/// Deterministic pseudo-random bytes (xorshift64).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn fixture(seed: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A stand-in vmlinux: pack only reads its banner.
    let mut kernel = noise(seed, 256 * 1024);
    let banner = b"Linux version 6.1.0-vmimage-test (ci@build) #1 SMP\0";
    kernel[4096..4096 + banner.len()].copy_from_slice(banner);
    fs::write(d.join("vmlinux"), kernel).unwrap();
    // A real ext4 image with incompressible content and zero-filled space, large enough
    // to travel as three parts (64 + 64 + 32 MiB).
    let tree = d.join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/hostname"), format!("image-{seed}\n")).unwrap();
    fs::write(tree.join("data.bin"), noise(seed + 100, 6 << 20)).unwrap();
    let rootfs = d.join("rootfs.ext4");
    let mkfs = which("mkfs.ext4").expect("mkfs.ext4 missing: run make setup");
    let out = Command::new(mkfs)
        .args(["-q", "-F", "-d"])
        .arg(&tree)
        .arg(&rootfs)
        .arg("160M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot = d.join("snapshot");
    fs::create_dir_all(&snapshot).unwrap();
    fs::write(snapshot.join("vmstate"), noise(seed + 200, 64 * 1024)).unwrap();
    let mut mem = vec![0u8; 8 << 20];
    mem[1 << 20..(1 << 20) + 300_000].copy_from_slice(&noise(seed + 300, 300_000));
    fs::write(snapshot.join("memory"), mem).unwrap();
    let sbom = d.join("sbom.spdx.json");
    fs::write(
        &sbom,
        format!(r#"{{"spdxVersion":"SPDX-2.3","name":"image-{seed}"}}"#),
    )
    .unwrap();
    Fixture {
        kernel: d.join("vmlinux"),
        rootfs,
        snapshot,
        sbom,
        dir,
    }
}

fn sha256_file(p: &Path) -> String {
    let data = fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let h = Sha256::digest(&data);
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs vmimage with an empty docker config (never the host's).
fn vm(args: &[&str], env: &[(&str, &str)]) -> Output {
    let empty = std::env::temp_dir().join("vmimage-test-empty-docker-config");
    fs::create_dir_all(&empty).unwrap();
    let mut cmd = vmimage(args);
    cmd.env("DOCKER_CONFIG", &empty)
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running vmimage")
}

fn vm_ok(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = vm(&a, env);
    assert!(
        out.status.success(),
        "vmimage {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "vmimage {args:?}: bad JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs vmimage expecting failure; returns stderr.
fn vm_err(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = vm(args, env);
    assert!(
        !out.status.success(),
        "vmimage {args:?} should have failed; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Packs `fx` into a layout under the fixture dir; returns (ref, digest).
fn pack(fx: &Fixture, tag: &str) -> (String, String) {
    let layout = format!("oci:{}:{tag}", fx.dir.path().join("oci").display());
    let digest = pack_to(fx, &layout, "1700000000");
    (layout, digest)
}

/// Packs `fx` to `dest` with the given SOURCE_DATE_EPOCH; returns the digest.
fn pack_to(fx: &Fixture, dest: &str, epoch: &str) -> String {
    let j = vm_ok(
        &[
            "pack",
            "--kernel",
            fx.kernel.to_str().unwrap(),
            "--rootfs",
            fx.rootfs.to_str().unwrap(),
            "--snapshot",
            fx.snapshot.to_str().unwrap(),
            "--sbom",
            fx.sbom.to_str().unwrap(),
            "--vcpus",
            "2",
            "--memory-mib",
            "256",
            "--version",
            "1.0.0",
            dest,
        ],
        &[("SOURCE_DATE_EPOCH", epoch)],
    );
    j["digest"].as_str().unwrap().to_string()
}

/// Checks that `out` holds the fixture's files, byte for byte.
fn assert_same_files(fx: &Fixture, out: &Path) {
    assert_eq!(sha256_file(&out.join("vmlinux")), sha256_file(&fx.kernel));
    assert_eq!(
        sha256_file(&out.join("rootfs.ext4")),
        sha256_file(&fx.rootfs)
    );
    for f in ["vmstate", "memory"] {
        assert_eq!(
            sha256_file(&out.join("snapshot").join(f)),
            sha256_file(&fx.snapshot.join(f)),
            "snapshot/{f}"
        );
    }
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("vmimage.json")).unwrap()).unwrap();
    assert_eq!(cfg["kernelRelease"], "6.1.0-vmimage-test");
    assert_eq!(cfg["vcpus"], 2);
    assert_eq!(cfg["memoryMib"], 256);
    assert_eq!(cfg["rootfsFilesystem"], "ext4");
    assert_eq!(cfg["sourceDateEpoch"], 1_700_000_000u64);
}

const PLAIN: &str = "--plain-http";

#[test]
fn test_pack_push_pull_round_trip_is_byte_identical_and_sparse() {
    let reg = TestRegistry::start(RegistryConfig::default());
    let fx = fixture(1);
    let (layout, digest) = pack(&fx, "v1");
    let dest = format!("{}/vm/web:v1", reg.host());

    let pushed = vm_ok(&["push", &layout, &dest, PLAIN], &[]);
    assert_eq!(pushed["digest"], digest.as_str(), "digest kept across push");
    // config + kernel + rootfs + 2 snapshot files, then SBOM blob + empty config
    assert!(pushed["blobs_copied"].as_u64().unwrap() >= 5, "{pushed}");
    assert_eq!(pushed["referrers"], 1);

    // Unchanged re-push: every blob skipped after a HEAD.
    let again = vm_ok(&["push", &layout, &dest, PLAIN], &[]);
    assert_eq!(again["blobs_copied"], 0, "{again}");
    assert!(again["blobs_skipped"].as_u64().unwrap() >= 5);

    let i = vm_ok(&["inspect", &dest, PLAIN], &[]);
    assert_eq!(i["digest"], digest.as_str());
    assert_eq!(i["artifact_type"], "application/vnd.vmimage.image.v1+json");
    assert_eq!(
        i["annotations"]["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(
        i["annotations"]["org.opencontainers.image.version"],
        "1.0.0"
    );
    assert_eq!(i["config"]["kernelRelease"], "6.1.0-vmimage-test");
    let titles: Vec<&str> = i["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "vmlinux",
            "rootfs.ext4",
            "rootfs.ext4",
            "rootfs.ext4",
            "snapshot/memory",
            "snapshot/vmstate"
        ]
    );
    // The rootfs travels as parts, each its own blob, that tile the file.
    let parts: Vec<(u64, u64)> = i["layers"].as_array().unwrap()[1..4]
        .iter()
        .map(|l| {
            assert_eq!(
                l["media_type"],
                "application/vnd.vmimage.rootfs.ext4.v1+zstd"
            );
            (
                l["part_offset"].as_u64().unwrap(),
                l["uncompressed_size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        parts,
        [(0, 64 << 20), (64 << 20, 64 << 20), (128 << 20, 32 << 20)]
    );
    let refs = i["referrers"].as_array().unwrap();
    assert_eq!(refs.len(), 1, "{i}");
    assert_eq!(refs[0]["artifactType"], "application/spdx+json");

    // The registry has no referrers API: the tag-schema fallback holds it.
    let tags = vm_ok(&["tags", &format!("{}/vm/web", reg.host()), PLAIN], &[]);
    let fallback = digest.replace(':', "-");
    let tags: Vec<&str> = tags
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tags, [fallback.as_str(), "v1"]);

    let out = fx.dir.path().join("pulled");
    let p = vm_ok(&["pull", &dest, "--out", out.to_str().unwrap(), PLAIN], &[]);
    assert_eq!(p["digest"], digest.as_str());
    let rootfs_file = p["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "rootfs.ext4")
        .expect("rootfs.ext4 pulled");
    assert_eq!(rootfs_file["parts"], 3, "{p}");
    assert_eq!(rootfs_file["size"], 160u64 << 20);
    assert_same_files(&fx, &out);
    let meta = fs::metadata(out.join("rootfs.ext4")).unwrap();
    assert!(
        meta.blocks() * 512 < meta.len() / 2,
        "rootfs.ext4 should be sparse: {} bytes allocated of {}",
        meta.blocks() * 512,
        meta.len()
    );

    // From the layout too, and nothing left but the output.
    let out2 = fx.dir.path().join("pulled-layout");
    vm_ok(&["pull", &layout, "--out", out2.to_str().unwrap()], &[]);
    assert_same_files(&fx, &out2);
    assert!(
        !fs::read_dir(fx.dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp")),
        "temporary directories left behind"
    );
}

#[test]
fn test_pack_is_deterministic_and_follows_source_date_epoch() {
    let fx = fixture(2);
    let (_, a) = pack(&fx, "a");
    let (_, b) = pack(&fx, "b");
    assert_eq!(a, b, "same inputs, same manifest digest");
    let other = fx.dir.path().join("oci2");
    let c = pack_to(&fx, &format!("oci:{}:x", other.display()), "1700000001");
    assert_ne!(c, a, "created comes from SOURCE_DATE_EPOCH");
}

fn skopeo(args: &[&str]) -> Output {
    let bin = which("skopeo").expect("skopeo missing: run make setup");
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn test_skopeo_reads_what_vmimage_pushed_and_vmimage_pulls_skopeo_copies() {
    let reg = TestRegistry::start(RegistryConfig::default());
    let fx = fixture(3);
    let (layout, digest) = pack(&fx, "v1");
    let src = format!("{}/vm/interop:v1", reg.host());
    vm_ok(&["push", &layout, &src, PLAIN], &[]);

    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{src}"),
    ]);
    let m: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(m["artifactType"], "application/vnd.vmimage.image.v1+json");
    assert_eq!(
        m["layers"].as_array().unwrap().len(),
        6,
        "vmlinux, 3 rootfs parts, 2 snapshot files"
    );
    // skopeo 1.9's non-raw inspect refuses artifacts ("unsupported
    // image-specific operation on artifact"), so check the raw bytes' digest.
    let raw_digest: String = Sha256::digest(&raw.stdout)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(format!("sha256:{raw_digest}"), digest);

    // Registry to registry with skopeo, then vmimage pulls the copy.
    let copy = format!("{}/vm/skopeo-copy:v1", reg.host());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{src}"),
        &format!("docker://{copy}"),
    ]);
    let out = fx.dir.path().join("from-skopeo-copy");
    vm_ok(&["pull", &copy, "--out", out.to_str().unwrap(), PLAIN], &[]);
    assert_same_files(&fx, &out);

    // Registry to an OCI layout with skopeo; vmimage reads the layout.
    let sk_layout = fx.dir.path().join("skopeo-layout");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{src}"),
        &format!("oci:{}:v1", sk_layout.display()),
    ]);
    let out2 = fx.dir.path().join("from-skopeo-layout");
    vm_ok(
        &[
            "pull",
            &format!("oci:{}:v1", sk_layout.display()),
            "--out",
            out2.to_str().unwrap(),
        ],
        &[],
    );
    assert_same_files(&fx, &out2);
}

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn test_basic_auth_from_docker_config_and_credential_helper() {
    let reg = TestRegistry::start(RegistryConfig {
        htpasswd: Some(("ci".into(), "s3cret-pw".into())),
        tls: false,
    });
    let fx = fixture(4);
    let (layout, _) = pack(&fx, "v1");
    let dest = format!("{}/vm/auth:v1", reg.host());
    let cfg = |name: &str, body: String| {
        let d = fx.dir.path().join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("config.json"), body).unwrap();
        d
    };
    let good = cfg(
        "docker-good",
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            b64(b"ci:s3cret-pw")
        ),
    );
    let good = good.to_str().unwrap();
    vm_ok(&["push", &layout, &dest, PLAIN], &[("DOCKER_CONFIG", good)]);
    let out = fx.dir.path().join("auth-pulled");
    vm_ok(
        &["pull", &dest, "--out", out.to_str().unwrap(), PLAIN],
        &[("DOCKER_CONFIG", good)],
    );
    assert_same_files(&fx, &out);

    // Wrong password: refused, the user named, the password never printed.
    let bad = cfg(
        "docker-bad",
        format!(
            r#"{{"auths":{{"http://{}/v1/":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            b64(b"ci:wrong-pw-123")
        ),
    );
    let e = vm_err(
        &["-vv", "push", &layout, &dest, PLAIN],
        &[("DOCKER_CONFIG", bad.to_str().unwrap())],
    );
    assert!(e.contains("refused access") && e.contains("user ci"), "{e}");
    assert!(!e.contains("wrong-pw-123"), "password leaked:\n{e}");

    // Anonymous: refused too.
    let e = vm_err(&["inspect", &dest, PLAIN], &[]);
    assert!(
        e.contains("refused access") && e.contains("anonymous"),
        "{e}"
    );

    // A credential helper (credHelpers) answering with the right secret.
    let bin = fx.dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-vmtest");
    fs::write(
        &helper,
        "#!/bin/sh\nread host\necho \"{\\\"ServerURL\\\":\\\"$host\\\",\\\"Username\\\":\\\"ci\\\",\\\"Secret\\\":\\\"s3cret-pw\\\"}\"\n",
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut fs::metadata(&helper).unwrap().permissions(),
        0o755,
    );
    Command::new("chmod")
        .arg("755")
        .arg(&helper)
        .status()
        .unwrap();
    let helped = cfg(
        "docker-helper",
        format!(r#"{{"credHelpers":{{"{}":"vmtest"}}}}"#, reg.host()),
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let t = vm_ok(
        &["tags", &format!("{}/vm/auth", reg.host()), PLAIN],
        &[("DOCKER_CONFIG", helped.to_str().unwrap()), ("PATH", &path)],
    );
    assert!(t.as_array().unwrap().iter().any(|x| x == "v1"), "{t}");
}

#[test]
fn test_tls_registry_with_private_ca() {
    let reg = TestRegistry::start(RegistryConfig {
        htpasswd: None,
        tls: true,
    });
    let ca = reg.ca_file().unwrap().to_str().unwrap().to_string();
    let fx = fixture(5);
    let (layout, digest) = pack(&fx, "v1");
    let dest = format!("{}/vm/tls:v1", reg.host());
    let e = vm_err(&["push", &layout, &dest], &[]);
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    let p = vm_ok(&["push", &layout, &dest, "--ca-file", &ca], &[]);
    assert_eq!(p["digest"], digest.as_str());
    let out = fx.dir.path().join("tls-pulled");
    vm_ok(
        &[
            "pull",
            &dest,
            "--out",
            out.to_str().unwrap(),
            "--ca-file",
            &ca,
        ],
        &[],
    );
    assert_same_files(&fx, &out);
}

#[test]
fn test_ecr_through_moto_control_plane_and_registry() {
    let moto = MotoServer::start();
    let aws_env: Vec<(&str, &str)> = vec![
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let py = |code: &str| {
        let out = Command::new("python3")
            .args(["-c", code])
            .envs(aws_env.iter().cloned())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let client = format!(
        "import boto3,base64,json; c=boto3.client('ecr', endpoint_url='{}', region_name='us-east-1');",
        moto.endpoint()
    );
    // What the token decodes to decides the registry's htpasswd.
    let decoded = py(&format!(
        "{client} print(base64.b64decode(c.get_authorization_token(registryIds=['123456789012'])['authorizationData'][0]['authorizationToken']).decode())"
    ));
    let (user, pass) = decoded.trim().split_once(':').unwrap();
    assert_eq!(user, "AWS");
    let reg = TestRegistry::start(RegistryConfig {
        htpasswd: Some((user.into(), pass.into())),
        tls: false,
    });
    let fx = fixture(6);
    let (layout, digest) = pack(&fx, "v1");
    let dest = format!("{}/team/web:v1", reg.host());
    let endpoint = moto.endpoint();
    let ecr = [
        PLAIN,
        "--ecr-endpoint",
        endpoint.as_str(),
        "--ecr-registry-id",
        "123456789012",
        "--ecr-region",
        "us-east-1",
    ];
    let mut args = vec![
        "-vv",
        "--json",
        "push",
        &layout,
        &dest,
        "--create-repository",
    ];
    args.extend_from_slice(&ecr);
    let out = vm(&args, &aws_env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains(pass) && !String::from_utf8_lossy(&out.stdout).contains(pass),
        "ECR password leaked into the output"
    );
    let repo = py(&format!(
        "{client} r=c.describe_repositories(repositoryNames=['team/web'])['repositories'][0]; print(r['imageTagMutability'], r['imageScanningConfiguration']['scanOnPush'])"
    ));
    assert_eq!(repo.trim(), "IMMUTABLE True");

    let pulled = fx.dir.path().join("ecr-pulled");
    let mut args = vec!["--json", "pull", &dest, "--out", pulled.to_str().unwrap()];
    args.extend_from_slice(&ecr);
    let out = vm(&args, &aws_env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["digest"], digest.as_str());
    assert_same_files(&fx, &pulled);

    // Without the ECR flags the registry refuses (no docker credentials).
    let e = vm_err(&["inspect", &dest, PLAIN], &[]);
    assert!(e.contains("refused access"), "{e}");
}

#[test]
fn test_dropped_connections_mid_blob_are_retried_and_resumed() {
    let reg = TestRegistry::start(RegistryConfig::default());
    let fx = fixture(7);
    let (layout, digest) = pack(&fx, "v1");

    let up = FaultProxy::start(
        &reg.host(),
        Fault::DropOnce {
            direction: Direction::Up,
            after: 3 << 20,
        },
    );
    let p = vm_ok(
        &["push", &layout, &format!("{}/vm/drop:v1", up.host()), PLAIN],
        &[],
    );
    assert_eq!(p["digest"], digest.as_str());
    assert_eq!(up.fired(), 1, "the upload connection was cut once");

    let down = FaultProxy::start(
        &reg.host(),
        Fault::DropOnce {
            direction: Direction::Down,
            after: 3 << 20,
        },
    );
    let out = fx.dir.path().join("drop-pulled");
    let o = vm(
        &[
            "pull",
            &format!("{}/vm/drop:v1", down.host()),
            "--out",
            out.to_str().unwrap(),
            PLAIN,
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(down.fired(), 1, "the download connection was cut once");
    assert!(
        stderr.contains("resuming"),
        "expected a ranged resume:\n{stderr}"
    );
    assert_same_files(&fx, &out);
}

#[test]
fn test_corrupted_blob_is_refused_and_nothing_is_kept() {
    let reg = TestRegistry::start(RegistryConfig::default());
    let fx = fixture(8);
    let (layout, _) = pack(&fx, "v1");
    vm_ok(
        &["push", &layout, &format!("{}/vm/bad:v1", reg.host()), PLAIN],
        &[],
    );
    let flip = FaultProxy::start(&reg.host(), Fault::FlipByte { at: 2 << 20 });
    let parent = fx.dir.path().join("flip");
    fs::create_dir_all(&parent).unwrap();
    let out = parent.join("out");
    let e = vm_err(
        &[
            "pull",
            &format!("{}/vm/bad:v1", flip.host()),
            "--out",
            out.to_str().unwrap(),
            PLAIN,
        ],
        &[],
    );
    assert!(flip.fired() >= 1);
    assert!(
        e.contains("digest mismatch")
            && e.contains("expected sha256:")
            && e.contains("actual sha256:"),
        "{e}"
    );
    assert!(!out.exists(), "--out must not exist after a refused pull");
    assert_eq!(
        fs::read_dir(&parent).unwrap().count(),
        0,
        "temporary files left behind"
    );
}

/// `tests/src/strict_proxy.py` in front of a real registry: a registry that refuses
/// manifests carrying `artifactType`, as registries without OCI 1.1 support do.
struct StrictProxy {
    child: std::process::Child,
    port: u16,
}

impl StrictProxy {
    fn start(upstream: &str) -> StrictProxy {
        use std::io::BufRead;
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/strict_proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(upstream)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        StrictProxy { child, port }
    }
}

impl Drop for StrictProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn test_registry_refusing_artifact_type_gets_the_fallback_form() {
    let reg = TestRegistry::start(RegistryConfig::default());
    let proxy = StrictProxy::start(&reg.host());
    let fx = fixture(31);
    let (layout, digest) = pack(&fx, "v1");
    let dest = format!("127.0.0.1:{}/vm/plain:v1", proxy.port);

    let pushed = vm_ok(&["push", &layout, &dest, PLAIN], &[]);
    // Stored without artifactType: another manifest, hence another digest.
    assert_ne!(pushed["digest"], digest.as_str(), "{pushed}");
    assert_eq!(pushed["referrers"], 1, "{pushed}");

    let i = vm_ok(&["inspect", &dest, PLAIN], &[]);
    assert_eq!(i["digest"], pushed["digest"]);
    // The type now comes from the config's media type, and vmimage still knows it.
    assert_eq!(i["artifact_type"], "application/vnd.vmimage.config.v1+json");
    let refs = i["referrers"].as_array().unwrap();
    assert_eq!(refs.len(), 1, "{i}");
    assert_eq!(refs[0]["artifactType"], "application/spdx+json");

    let out = fx.dir.path().join("pulled-plain");
    vm_ok(&["pull", &dest, "--out", out.to_str().unwrap(), PLAIN], &[]);
    assert_same_files(&fx, &out);
}

#[test]
fn test_copy_within_a_registry_mounts_blobs_across_repositories() {
    let reg = TestRegistry::start(RegistryConfig::default());
    let fx = fixture(21);
    let (layout, digest) = pack(&fx, "v1");
    let a = format!("{}/team-a/img:1", reg.host());
    let b = format!("{}/team-b/img:1", reg.host());
    vm_ok(&["push", &layout, &a, PLAIN], &[]);
    // Same registry, other repository: every blob is mounted, none is uploaded.
    let copied = vm_ok(&["push", &a, &b, PLAIN], &[]);
    assert_eq!(copied["digest"], digest.as_str());
    assert_eq!(copied["blobs_copied"], 0, "{copied}");
    assert!(copied["blobs_mounted"].as_u64().unwrap() >= 6, "{copied}");
    let out = fx.dir.path().join("from-b");
    vm_ok(&["pull", &b, "--out", out.to_str().unwrap(), PLAIN], &[]);
    assert_same_files(&fx, &out);
}

#[test]
fn test_release_version_tags_are_immutable_and_channels_move() {
    let reg = TestRegistry::start(RegistryConfig::default());
    let repo = format!("{}/vm/rel", reg.host());
    let fx1 = fixture(9);
    let (l1, d1) = pack(&fx1, "v1");
    vm_ok(&["push", &l1, &format!("{repo}:build-1"), PLAIN], &[]);
    let fx2 = fixture(10);
    let (l2, d2) = pack(&fx2, "v1");
    vm_ok(&["push", &l2, &format!("{repo}:build-2"), PLAIN], &[]);
    assert_ne!(d1, d2);

    let r = vm_ok(
        &[
            "release",
            &format!("{repo}:build-1"),
            "--version",
            "1.0.0",
            "--channel",
            "latest",
            "--channel",
            "stable",
            "--revision",
            "0123abcd",
            PLAIN,
        ],
        &[],
    );
    assert_eq!(r["digest"], d1.as_str());
    // Same version, same image: idempotent.
    vm_ok(
        &[
            "release",
            &format!("{repo}:build-1"),
            "--version",
            "1.0.0",
            PLAIN,
        ],
        &[],
    );

    // Same version, other image: refused, both digests named.
    let e = vm_err(
        &[
            "release",
            &format!("{repo}:build-2"),
            "--version",
            "1.0.0",
            PLAIN,
        ],
        &[],
    );
    assert!(
        e.contains(&d1) && e.contains(&d2) && e.contains("immutable"),
        "{e}"
    );
    let i = vm_ok(&["inspect", &format!("{repo}:1.0.0"), PLAIN], &[]);
    assert_eq!(
        i["digest"],
        d1.as_str(),
        "refused release left the tag alone"
    );

    // A new version moves `latest` but not `stable`.
    let r = vm_ok(
        &[
            "release",
            &format!("{repo}:build-2"),
            "--version",
            "1.1.0",
            "--channel",
            "latest",
            PLAIN,
        ],
        &[],
    );
    assert_eq!(r["moved"][0][0], "latest");
    assert_eq!(r["moved"][0][1], d1.as_str());
    assert_eq!(
        vm_ok(&["inspect", &format!("{repo}:latest"), PLAIN], &[])["digest"],
        d2.as_str()
    );
    assert_eq!(
        vm_ok(&["inspect", &format!("{repo}:stable"), PLAIN], &[])["digest"],
        d1.as_str()
    );

    // --force moves a version tag.
    let f = vm_ok(
        &[
            "release",
            &format!("{repo}:build-2"),
            "--version",
            "1.0.0",
            "--force",
            PLAIN,
        ],
        &[],
    );
    assert_eq!(f["forced"], true);
    assert_eq!(
        vm_ok(&["inspect", &format!("{repo}:1.0.0"), PLAIN], &[])["digest"],
        d2.as_str()
    );

    let list = vm_ok(&["release", "list", &repo, PLAIN], &[]);
    let list = list.as_array().unwrap();
    let versions: Vec<&str> = list
        .iter()
        .map(|e| e["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"]);
    assert_eq!(list[0]["digest"], d2.as_str());
    assert_eq!(list[0]["created"], "2023-11-14T22:13:20Z");
    assert!(
        list[0]["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "latest")
    );

    // Bad versions and channels that pose as versions.
    let e = vm_err(
        &[
            "release",
            &format!("{repo}:build-1"),
            "--version",
            "v2",
            PLAIN,
        ],
        &[],
    );
    assert!(e.contains("invalid version `v2`"), "{e}");
    let e = vm_err(
        &[
            "release",
            &format!("{repo}:build-1"),
            "--version",
            "2.0.0",
            "--channel",
            "3.0.0",
            PLAIN,
        ],
        &[],
    );
    assert!(e.contains("looks like a version"), "{e}");
}

#[test]
fn test_bad_input_gives_clear_errors() {
    let e = vm_err(&["inspect", "web:latest"], &[]);
    assert!(
        e.contains("malformed reference \"web:latest\": expected"),
        "{e}"
    );
    let e = vm_err(&["push", "oci:/nonexistent/x:v1", "127.0.0.1:1/a:b"], &[]);
    assert!(e.contains("not an OCI image layout"), "{e}");

    // Nothing listens on this port.
    let port = free_port();
    let e = vm_err(&["tags", &format!("127.0.0.1:{port}/vm/x"), PLAIN], &[]);
    assert!(
        e.contains(&format!("cannot connect to registry 127.0.0.1:{port}")),
        "{e}"
    );

    let reg = TestRegistry::start(RegistryConfig::default());
    let e = vm_err(
        &[
            "pull",
            &format!("{}/vm/none:v9", reg.host()),
            "--out",
            "/tmp/x-none",
            PLAIN,
        ],
        &[],
    );
    assert!(e.contains("`v9`") && e.contains("not found"), "{e}");

    // A layout with a blob missing: pull names the blob.
    let fx = fixture(11);
    let (layout, _) = pack(&fx, "v1");
    let i = vm_ok(&["inspect", &layout], &[]);
    let rootfs_digest = i["layers"][1]["digest"].as_str().unwrap().to_string();
    let blob = fx
        .dir
        .path()
        .join("oci/blobs/sha256")
        .join(rootfs_digest.trim_start_matches("sha256:"));
    fs::remove_file(&blob).unwrap();
    let out = fx.dir.path().join("missing-blob");
    let e = vm_err(&["pull", &layout, "--out", out.to_str().unwrap()], &[]);
    assert!(
        e.contains(rootfs_digest.trim_start_matches("sha256:")),
        "{e}"
    );
    assert!(!out.exists());

    // Pushing that layout: the missing blob is named too.
    let e = vm_err(
        &[
            "push",
            &layout,
            &format!("{}/vm/broken:v1", reg.host()),
            PLAIN,
        ],
        &[],
    );
    assert!(
        e.contains(rootfs_digest.trim_start_matches("sha256:")),
        "{e}"
    );

    // Not an ext4 rootfs.
    let e = vm_err(
        &[
            "pack",
            "--kernel",
            fx.kernel.to_str().unwrap(),
            "--rootfs",
            fx.kernel.to_str().unwrap(),
            &format!("oci:{}:x", fx.dir.path().join("oci3").display()),
        ],
        &[],
    );
    assert!(
        e.contains("vmlinux") && e.contains("not an ext4 image"),
        "{e}"
    );
}
