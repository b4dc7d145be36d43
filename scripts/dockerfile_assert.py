"""Structural checks on the Dockerfile and .dockerignore, the `dockerfile` mode of scripts/chart_assert.py
(also the fallback when hadolint is not available): the builder and runtime Debian packages follow the
rdkafka features in Cargo.toml, the runtime stage carries no build tool, source or secret, runs as uid
10001 and execs the binary. Plain text parsing that no chart or Docker linter expresses."""

from __future__ import annotations

import os
import re
from pathlib import Path


def rdkafka_build_packages(cargo_toml: Path) -> tuple[list[str], list[str], list[str]]:
    """Debian packages that building librdkafka needs with the rdkafka features of Cargo.toml, those it
    does not need, and the runtime libraries the binary then links (rdkafka-sys build.rs: without
    `cmake-build`, librdkafka's mklove ./configure + `make libs`, which builds the C++ wrapper too)."""
    import tomllib
    deps = tomllib.loads(cargo_toml.read_text()).get("dependencies", {})
    rd = deps.get("rdkafka", {})
    rd = rd if isinstance(rd, dict) else {}
    feats = set(rd.get("features", []))
    if rd.get("default-features", True):
        feats.add("libz")
    if feats & {"ssl-vendored", "gssapi", "gssapi-vendored", "sasl"}:
        feats.add("ssl")
    if feats & {"gssapi-vendored", "sasl"}:
        feats.add("gssapi")
    builder, unneeded, runtime = ["make", "g++", "pkg-config"], [], []
    (builder if {"cmake-build", "cmake_build"} & feats else unneeded).append("cmake")
    if "ssl" in feats and "ssl-vendored" not in feats:
        builder.append("libssl-dev"); runtime.append("libssl3")
    if "libz" in feats:
        builder.append("zlib1g-dev"); runtime.append("zlib1g")
    if "gssapi" in feats and "gssapi-vendored" not in feats:
        builder.append("libsasl2-dev"); runtime.append("libsasl2-2")
    else:
        unneeded.append("libsasl2-dev")
    return builder, unneeded, runtime


def check_dockerfile(dockerfile: str, dockerignore: str, cargo_toml: str, ck) -> None:
    """Adds the Dockerfile's checks to ck (a chart_assert.Checker)."""
    text = open(dockerfile).read()
    lines = [ln for ln in re.sub(r"\\\n", " ", text).splitlines()]
    instr = [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if len(ln.split(None, 1)) > 1 else "")
             for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    stages, cur = [], None
    for op, rest in instr:
        if op == "FROM":
            cur = {"from": rest, "ops": []}
            stages.append(cur)
        elif cur is not None:
            cur["ops"].append((op, rest))
    ck.check(len(stages) >= 2, "Dockerfile is not multi-stage")
    build_cmd = "cargo build --release --locked --bin marketflow-ingestor"
    ck.check(f"# BUILD-CMD: {build_cmd}" in text.splitlines(), "no `# BUILD-CMD:` marker line with the exact build command")
    ck.check(any(op == "RUN" and build_cmd in rest for s in stages[:-1] for op, rest in s["ops"]),
             "the build stage does not RUN the exact build command")
    pin = re.search(r'^channel\s*=\s*"([^"]+)"', (Path(cargo_toml).parent / "rust-toolchain.toml").read_text(), re.M)
    builder = f"rust:{pin.group(1) if pin else '(no channel in rust-toolchain.toml)'}-bookworm"
    ck.check(stages and stages[0]["from"].split()[0] == builder, f"builder is not {builder}, the release rust-toolchain.toml pins")
    builder_pkgs, builder_unneeded, runtime_pkgs = rdkafka_build_packages(Path(cargo_toml))
    builder_run = " ".join(r for op, r in (stages[0]["ops"] if stages else []) if op == "RUN")
    has_pkg = lambda pkg, text: re.search(rf"(?<![\w.+-]){re.escape(pkg)}(?![\w.+-])", text)  # noqa: E731
    for pkg in builder_pkgs:
        ck.check(has_pkg(pkg, builder_run), f"builder lacks {pkg} (needed to build librdkafka with {cargo_toml}'s features)")
    for pkg in builder_unneeded:
        ck.check(not has_pkg(pkg, builder_run), f"builder installs {pkg}, which the rdkafka features in {cargo_toml} do not use")
    builder_text = " ".join(f"{op} {r}" for op, r in (stages[0]["ops"] if stages else []))
    ck.check(re.search(r"\bARG GIT_COMMIT\b", builder_text), "builder has no `ARG GIT_COMMIT` (build.rs records the commit from it)")
    build_idx = next((i for i, (op, r) in enumerate(stages[0]["ops"] if stages else []) if op == "RUN" and build_cmd in r), None)
    arg_idx = next((i for i, (op, r) in enumerate(stages[0]["ops"] if stages else []) if op == "ARG" and r.split("=")[0].strip() == "GIT_COMMIT"), None)
    ck.check(arg_idx is not None and build_idx is not None and arg_idx < build_idx, "ARG GIT_COMMIT is not declared before the cargo build")
    final = stages[-1] if stages else {"from": "", "ops": []}
    ck.check(final["from"].split()[0] == "debian:bookworm-slim", "runtime is not debian:bookworm-slim")
    final_run = " ".join(r for op, r in final["ops"] if op == "RUN")
    for pkg in ("ca-certificates", *runtime_pkgs):
        ck.check(has_pkg(pkg, final_run), f"runtime lacks {pkg}")
    for tool in ("cmake", "gcc", "g\\+\\+", "make", "cargo", "rustc", "pkg-config", r"\S+-dev", "build-essential", "curl", "wget"):
        ck.check(not re.search(rf"apt-get install[^&]*\s{tool}(\s|$)", final_run), f"runtime installs build tool {tool}")
    ck.check("--no-install-recommends" in final_run and "rm -rf /var/lib/apt/lists" in final_run,
             "runtime apt-get lacks --no-install-recommends / list cleanup")
    users = [r.strip() for op, r in final["ops"] if op == "USER"]
    ck.check(users and users[-1].split(":")[0] == "10001", f"final USER is {users[-1] if users else None}, want 10001")
    ck.check(re.search(r"useradd[^&]*--uid 10001", final_run), "runtime does not create uid 10001")
    ck.check(any(op == "EXPOSE" and "8000" in r.split() for op, r in final["ops"]), "no EXPOSE 8000")
    eps = [r for op, r in final["ops"] if op == "ENTRYPOINT"]
    ck.check(eps and eps[-1].strip().startswith("[") and "marketflow-ingestor" in eps[-1], "ENTRYPOINT is not the binary in exec form")
    for op, r in instr:
        if op in ("ENV", "ARG"):
            ck.check(not re.search(r"(PASSWORD|SECRET|TOKEN|CONNECTIONSTRING)", r, re.I), f"{op} {r!r} looks like a secret")
        if op == "ADD":
            ck.check(not re.search(r"https?://", r), f"ADD of a URL: {r}")
    copies_from_builder = [r for op, r in final["ops"] if op == "COPY"]
    ck.check(all("--from=" in r for r in copies_from_builder), "runtime COPYs from the build context (sources/secrets)")
    if os.path.exists(dockerignore):
        ign = [ln.strip() for ln in open(dockerignore) if ln.strip() and not ln.startswith("#")]
        for must in ("target/", ".git/", ".env"):
            ck.check(any(i.rstrip("/") == must.rstrip("/") for i in ign), f".dockerignore does not exclude {must}")
        for keep in ("Cargo.lock", "Cargo.toml", "src"):
            ck.check(not any(i.rstrip("/") == keep for i in ign), f".dockerignore excludes {keep}, which the build needs")
        # Cargo resolves the whole workspace even for `--bin marketflow-ingestor`: every member's
        # manifest and targets must be in the context. A pattern excludes a path when it matches
        # the path or one of its parent folders (Docker's rule; no `!` re-includes are used here);
        # a pattern naming something inside a member cuts into it too.
        import fnmatch
        import tomllib
        ws = tomllib.loads(Path(cargo_toml).read_text()).get("workspace", {})
        members = [m for m in ws.get("members", []) if m.strip("./")]
        ck.check(members, f"{cargo_toml} has no [workspace] members besides the root")
        def excluded(path: str) -> str | None:
            parts = path.strip("/").split("/")
            prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
            return next((i for i in ign if not i.startswith("!")
                         for p in prefixes if fnmatch.fnmatchcase(p, i.strip("/"))), None)
        for member in members:
            pattern = excluded(member) or next((i for i in ign if i.strip("/").startswith(member.strip("/") + "/")), None)
            ck.check(pattern is None, f".dockerignore pattern {pattern!r} excludes workspace member {member}")
        ck.check(excluded("bench-results") is not None, ".dockerignore does not exclude bench-results/ (saved load-test results)")
    else:
        ck.check(False, f"{dockerignore} missing")
