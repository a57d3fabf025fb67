//! The container image (`Dockerfile`): where a Docker engine runs, builds it, runs
//! `foresight --version` in it, checks it runs as the unprivileged user, and proxies one
//! request through a `foresight serve` container to a `foresight backend` container (host
//! network). Where no engine runs, it says so and passes: the image is then not verified.
//!
//! Where the engine runs but no registry is reachable (these machines and CI: Debian's
//! `docker.io` runs, pulls fail), the Dockerfile's base images cannot be had. The test then
//! builds a stand-in for its runtime stage: `scratch` with the binary this test was built with
//! and the shared libraries it loads (what `distroless/cc` provides), and the Dockerfile's own
//! `USER`, `EXPOSE`, `ENTRYPOINT` and `CMD` lines. That verifies the runtime image's layout and
//! settings, not the build stage, and says so.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::free_port;

const TAG: &str = "foresight:test";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// Removes the named containers when dropped.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for c in &self.0 {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
    }
}

/// Builds `TAG` from `scratch`: the test's own binary and the shared libraries it loads, with
/// the runtime stage's settings taken from the Dockerfile.
fn stand_in(root: &Path) {
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    let settings: Vec<&str> = runtime
        .lines()
        .filter(|l| {
            ["USER ", "EXPOSE ", "ENTRYPOINT ", "CMD "]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .collect();
    assert_eq!(settings.len(), 4, "{runtime}");
    let copy = runtime
        .lines()
        .find(|l| l.starts_with("COPY --from=build /foresight "))
        .expect("the runtime stage copies the binary");
    let target = copy.rsplit(' ').next().unwrap();
    let ctx = common::tempdir("image-ctx");
    std::fs::copy(common::BIN, ctx.join("foresight")).unwrap();
    let mut lines = vec!["FROM scratch".to_string()];
    // Every library the binary loads, at its path (ld.so, libc, libm, libgcc_s).
    let ldd = Command::new("ldd").arg(common::BIN).output().expect("ldd");
    for l in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = l
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(str::to_string);
        let Some(path) = path else { continue };
        let inside = ctx.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(&path).unwrap(), &inside).unwrap();
        lines.push(format!("COPY {} {path}", path.trim_start_matches('/')));
    }
    lines.push(format!("COPY foresight {target}"));
    lines.extend(settings.iter().map(|s| s.to_string()));
    std::fs::write(ctx.join("Dockerfile"), lines.join("\n") + "\n").unwrap();
    let built = Command::new("docker")
        .args(["build", "-t", TAG, "."])
        .current_dir(&ctx)
        .output()
        .expect("docker build");
    assert!(
        built.status.success(),
        "the stand-in image: {}",
        String::from_utf8_lossy(&built.stderr)
    );
}

fn status_of(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().next().map(str::to_string)
}

#[test]
fn the_image_builds_runs_as_foresight_and_proxies_a_request() {
    let engine = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !engine {
        eprintln!(
            "skipped: no Docker engine here (`docker info` fails); the image is not built or \
             run on this machine"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let built = Command::new("docker")
        .args(["build", "-t", TAG, "."])
        .current_dir(&root)
        .output()
        .expect("docker build");
    if !built.status.success() {
        let why = String::from_utf8_lossy(&built.stderr).to_string();
        let pulls = docker(&["pull", "gcr.io/distroless/cc-debian12:nonroot"]);
        assert!(
            !pulls.status.success(),
            "docker build failed although the registry answers: {why}"
        );
        eprintln!(
            "no registry reachable (the Dockerfile's base images cannot be pulled): testing a \
             stand-in for its runtime stage; the build stage is not verified here"
        );
        stand_in(&root);
    }

    let v = docker(&["run", "--rm", TAG, "--version"]);
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success() && out.starts_with("foresight "), "{out}");
    let user = docker(&["image", "inspect", "-f", "{{.Config.User}}", TAG]);
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "65532:65532");

    let (backend, proxy, admin) = (free_port(), free_port(), free_port());
    let id = std::process::id();
    let names = Containers(vec![
        format!("foresight-test-backend-{id}"),
        format!("foresight-test-proxy-{id}"),
    ]);
    let run = |name: &str, args: &[String]| {
        let mut a = vec![
            "run",
            "-d",
            "--rm",
            "--network",
            "host",
            "--name",
            name,
            TAG,
        ];
        a.extend(args.iter().map(String::as_str));
        let o = docker(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(
        &names.0[0],
        &[
            "backend".into(),
            "--listen".into(),
            format!("127.0.0.1:{backend}"),
        ],
    );
    run(
        &names.0[1],
        &[
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{proxy}"),
            "--admin".into(),
            format!("127.0.0.1:{admin}"),
            "--backend".into(),
            format!("http://127.0.0.1:{backend}"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status_of(proxy);
        if s.as_deref().is_some_and(|l| l.contains(" 200 ")) {
            break;
        }
        assert!(Instant::now() < deadline, "no 200 through the image: {s:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
