//! The release pipeline publishes what the chart and the docs point at. GitHub Actions, a
//! container engine and a registry are out of reach of `cargo test`, so these tests read the
//! workflows, the chart and the Dockerfile and check that they agree:
//!
//! - `.github/workflows/release.yml` pushes the image the chart runs by default, tagged with
//!   the chart's `appVersion`, which is Cargo.toml's version;
//! - it runs on `v*` tags only and builds linux/amd64 and linux/arm64 (image and binaries);
//! - the image is built with the toolchain of rust-toolchain.toml;
//! - `.github/workflows/ci.yml` runs `.ci/run` with `CI=true`;
//! - docs/install.md names the published image and chart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The repository root: the nearest ancestor of this package that holds the chart (the
/// package may be a workspace member below the root).
fn repo() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|d| d.join("charts/weir/Chart.yaml").is_file())
        .unwrap_or_else(|| panic!("no charts/weir/Chart.yaml above {}", manifest_dir.display()))
        .to_path_buf()
}

fn read(path: &str) -> String {
    let full = repo().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn yaml<T: for<'de> Deserialize<'de>>(path: &str) -> T {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The version Cargo builds weir as (Cargo.toml's, or the workspace's when inherited).
const CARGO_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Deserialize)]
struct Workflow {
    on: BTreeMap<String, Option<Trigger>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    jobs: BTreeMap<String, Job>,
}

#[derive(Deserialize)]
struct Trigger {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    branches: Vec<String>,
}

#[derive(Deserialize)]
struct Job {
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    permissions: BTreeMap<String, String>,
    strategy: Option<Strategy>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Strategy {
    matrix: Matrix,
}

#[derive(Deserialize)]
struct Matrix {
    #[serde(default)]
    include: Vec<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct Step {
    uses: Option<String>,
    run: Option<String>,
    #[serde(default)]
    with: BTreeMap<String, String>,
}

impl Workflow {
    /// Every step of every job, with its job.
    fn steps(&self) -> impl Iterator<Item = (&Job, &Step)> {
        self.jobs
            .values()
            .flat_map(|job| job.steps.iter().map(move |step| (job, step)))
    }

    /// The `with:` of every step that uses `action` (any version).
    fn uses(&self, action: &str) -> Vec<&BTreeMap<String, String>> {
        self.steps()
            .filter(|(_, s)| {
                s.uses
                    .as_deref()
                    .and_then(|u| u.split_once('@'))
                    .is_some_and(|(name, _)| name == action)
            })
            .map(|(_, s)| &s.with)
            .collect()
    }

    fn env(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("the workflow sets no top-level env.{name}"))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chart {
    version: String,
    app_version: String,
}

#[derive(Deserialize)]
struct Values {
    image: Image,
}

#[derive(Deserialize)]
struct Image {
    repository: String,
    tag: String,
    digest: String,
}

#[derive(Deserialize)]
struct Deployment {
    spec: PodTemplateOwner,
}

#[derive(Deserialize)]
struct PodTemplateOwner {
    template: PodTemplate,
}

#[derive(Deserialize)]
struct PodTemplate {
    spec: PodSpec,
}

#[derive(Deserialize)]
struct PodSpec {
    containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    image: String,
}

fn release() -> Workflow {
    yaml(".github/workflows/release.yml")
}

#[test]
fn chart_version_and_app_version_are_cargos_version() {
    let chart: Chart = yaml("charts/weir/Chart.yaml");
    assert_eq!(
        chart.app_version, CARGO_VERSION,
        "charts/weir/Chart.yaml appVersion (the default image tag) must be Cargo.toml's version"
    );
    assert_eq!(
        chart.version, CARGO_VERSION,
        "charts/weir/Chart.yaml version must be Cargo.toml's version: release.yml publishes the \
         chart with each weir release, under the same version"
    );
}

#[test]
fn release_pushes_the_image_the_chart_runs_by_default() {
    let image = release().env("IMAGE").to_string();
    let values: Values = yaml("charts/weir/values.yaml");
    assert_eq!(
        values.image.repository, image,
        "charts/weir/values.yaml image.repository must be the image release.yml pushes"
    );
    assert!(
        values.image.tag.is_empty() && values.image.digest.is_empty(),
        "charts/weir/values.yaml image.tag and image.digest must default to \"\": the tag then \
         comes from the chart's appVersion, the one release.yml pushes"
    );

    // deploy/ is the chart rendered with its default values (scripts/render-deploy.sh, checked
    // by CI): the image reference the templates compute from the defaults.
    let deployment: Deployment = yaml("deploy/30-deployment.yaml");
    let want = format!("{image}:{CARGO_VERSION}");
    let got: Vec<&str> = deployment
        .spec
        .template
        .spec
        .containers
        .iter()
        .map(|c| c.image.as_str())
        .collect();
    assert_eq!(
        got,
        [want.as_str()],
        "the chart's default image must be {want}: the repository release.yml pushes, tagged \
         with the appVersion"
    );
}

#[test]
fn release_tags_the_image_with_the_version_without_v() {
    let release = release();
    let metas = release.uses("docker/metadata-action");
    assert_eq!(
        metas.len(),
        1,
        "release.yml: one docker/metadata-action step"
    );
    let meta = metas[0];
    assert_eq!(
        meta.get("images").map(|s| s.trim()),
        Some("${{ env.IMAGE }}"),
        "release.yml: docker/metadata-action must name env.IMAGE"
    );
    let tags = meta.get("tags").map(String::as_str).unwrap_or_default();
    assert!(
        tags.lines()
            .any(|l| l.trim() == "type=semver,pattern={{version}}"),
        "release.yml: the image must be tagged with the tag less its \"v\" \
         (type=semver,pattern={{{{version}}}}), which is the chart's appVersion; tags: {tags:?}"
    );
}

#[test]
fn release_runs_on_version_tags_only() {
    let release = release();
    let triggers: Vec<&str> = release.on.keys().map(String::as_str).collect();
    assert_eq!(triggers, ["push"], "release.yml must run on pushes only");
    let push = release.on["push"].as_ref().expect("release.yml: on.push");
    assert_eq!(push.tags, ["v*"], "release.yml must run on v* tags");
    assert!(
        push.branches.is_empty(),
        "release.yml must not run on branch pushes"
    );
}

#[test]
fn release_builds_amd64_and_arm64() {
    let release = release();
    let builds = release.uses("docker/build-push-action");
    assert_eq!(
        builds.len(),
        1,
        "release.yml: one docker/build-push-action step"
    );
    let build = builds[0];
    let mut platforms: Vec<&str> = build
        .get("platforms")
        .map(|p| p.split(',').map(str::trim).collect())
        .unwrap_or_default();
    platforms.sort_unstable();
    assert_eq!(
        platforms,
        ["linux/amd64", "linux/arm64"],
        "release.yml: the image must be built for linux/amd64 and linux/arm64"
    );
    assert_eq!(build.get("push").map(String::as_str), Some("true"));
    assert_eq!(
        build.get("tags").map(String::as_str),
        Some("${{ steps.meta.outputs.tags }}"),
        "release.yml: the image is pushed with the tags docker/metadata-action computes"
    );

    let mut targets: Vec<&str> = release
        .jobs
        .values()
        .filter_map(|j| j.strategy.as_ref())
        .flat_map(|s| &s.matrix.include)
        .filter_map(|entry| entry.get("target").map(String::as_str))
        .collect();
    targets.sort_unstable();
    assert_eq!(
        targets,
        ["aarch64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"],
        "release.yml: binaries must be built for linux amd64 and arm64"
    );
}

#[test]
fn release_signs_the_image_and_pushes_the_chart_where_the_docs_say() {
    let release = release();
    let (signer, _) = release
        .steps()
        .find(|(_, s)| {
            s.run
                .as_deref()
                .is_some_and(|r| r.contains("cosign sign --yes"))
        })
        .expect("release.yml: a step runs `cosign sign --yes` on the image");
    assert_eq!(
        signer.permissions.get("id-token").map(String::as_str),
        Some("write"),
        "release.yml: keyless cosign needs `id-token: write` on the signing job"
    );
    assert!(
        !release.uses("anchore/sbom-action").is_empty(),
        "release.yml: an SBOM is generated"
    );
    assert_eq!(
        release.env("CHART_REPOSITORY"),
        "oci://ghcr.io/weir-gateway/charts"
    );
    assert!(
        release.steps().any(|(_, s)| s
            .run
            .as_deref()
            .is_some_and(|r| r.contains("helm push") && r.contains("$CHART_REPOSITORY"))),
        "release.yml: a step runs `helm push ... $CHART_REPOSITORY`"
    );

    let install = read("docs/install.md");
    for reference in [
        release.env("IMAGE").to_string(),
        format!("{}/weir", release.env("CHART_REPOSITORY")),
    ] {
        assert!(
            install.contains(&reference),
            "docs/install.md does not mention {reference}"
        );
    }
}

#[test]
fn the_image_builds_with_the_pinned_toolchain() {
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"'))
        .expect("rust-toolchain.toml: channel = \"...\"");
    let dockerfile = read("Dockerfile");
    let arg = format!("ARG RUST_VERSION={channel}");
    assert!(
        dockerfile.lines().any(|l| l.trim() == arg),
        "Dockerfile must build with rust-toolchain.toml's channel: `{arg}`"
    );
}

#[test]
fn ci_runs_the_ci_script() {
    let ci: Workflow = yaml(".github/workflows/ci.yml");
    for trigger in ["push", "pull_request"] {
        assert!(ci.on.contains_key(trigger), "ci.yml must run on {trigger}");
    }
    let (job, _) = ci
        .steps()
        .find(|(_, s)| s.run.as_deref().is_some_and(|r| r.contains(".ci/run")))
        .expect("ci.yml: a step runs .ci/run");
    let ci_var = job.env.get("CI").or(ci.env.get("CI")).map(String::as_str);
    assert_eq!(
        ci_var,
        Some("true"),
        "ci.yml runs .ci/run with CI=true, so missing test tools fail instead of skipping"
    );
}
