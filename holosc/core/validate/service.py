"""One service's fields, each checked and turned into the model (image, vm, ports, mounts,
healthcheck, cloud-init, environment, secrets, Dockerfile)."""

from __future__ import annotations

import collections
import dataclasses
import difflib
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from holosc.core import images, quantities
from holosc.core.document import JsonPath
from holosc.core.dotenv import DotenvError, Parsed, parse_dotenv, parse_raw
from holosc.core.files import Files
from holosc.core.model import (
    CloudInit,
    Condition,
    Dependency,
    Device,
    Healthcheck,
    Image,
    Mount,
    MountKind,
    Port,
    Restart,
    Secret,
    SecretUse,
    Service,
    Vm,
    Volume,
    WriteFile,
)
from holosc.core.render.escape import qemu_cpu, qemu_name
from holosc.core.validate import dockerfile, networks
from holosc.core.validate.checker import (
    ENV_NAME,
    FALLBACK_USER,
    PERMISSIONS,
    UNREADABLE,
    USER,
    Checker,
)


def build_service(
    check: Checker,
    name: str,
    raw: dict[str, Any],
    volumes: dict[str, Volume],
    files: Files,
    secrets: dict[str, Secret],
) -> Service:
    at: JsonPath = ("services", name)
    replicas = raw.get("replicas", 1) if isinstance(raw.get("replicas"), int) else 1
    build, base = None, None
    if isinstance(raw.get("dockerfile"), str):
        build, base = _dockerfile(check, at, raw["dockerfile"], files)
    image = _image(check, at, raw, base, files)
    vm = _vm(check, at, raw.get("vm"))
    devices = _devices(check, at, raw.get("devices"))
    mounts = tuple(_mounts(check, at, raw.get("volumes"), volumes))
    vm = _memory_sharing(check, (*at, "vm"), raw.get("vm"), vm, devices, mounts)
    cloud_init = _cloud_init(check, at, raw.get("cloud_init"), image)
    grace = 30_000
    if "stop_grace_period" in raw and isinstance(raw["stop_grace_period"], str | int | float):
        grace = check.parse(
            (*at, "stop_grace_period"),
            quantities.parse_duration_ms,
            raw["stop_grace_period"],
            grace,
        )
    return Service(
        name=name,
        image=image,
        replicas=replicas,
        vm=vm,
        ports=tuple(_ports(check, at, raw.get("ports"), replicas)),
        mounts=mounts,
        devices=devices,
        depends_on=tuple(_depends_on(check, at, raw.get("depends_on"))),
        cloud_init=cloud_init,
        stop_grace_ms=grace,
        healthcheck=_healthcheck(check, at, raw.get("healthcheck")),
        build=build,
        restart=Restart(raw["restart"]) if raw.get("restart") in list(Restart) else None,
        environment=_environment(check, at, raw, files),
        secrets=tuple(_secret_uses(check, (*at, "secrets"), raw.get("secrets"), secrets)),
        networks=networks.attachments(check, at, raw.get("networks")),
        extra_hosts=networks.extra_hosts(check, at, raw.get("extra_hosts")),
    )


def top_level_secrets(raw: Any) -> dict[str, Secret]:
    """Top-level secrets; the schema has checked their shape."""
    result = {}
    for name, spec in (raw if isinstance(raw, dict) else {}).items():
        if isinstance(spec, dict) and len(spec) == 1:
            file, env = spec.get("file"), spec.get("environment")
            if isinstance(file, str) or isinstance(env, str):
                result[name] = Secret(name, file if isinstance(file, str) else None, env)
    return result


def _secret_uses(
    check: Checker, at: JsonPath, raw: Any, secrets: dict[str, Secret]
) -> Iterable[SecretUse]:
    targets: set[str] = set()
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        spec = {"source": item} if isinstance(item, str) else item
        if not isinstance(spec, dict) or not isinstance(spec.get("source"), str):
            continue  # the schema reports it
        where, source = (*at, i), spec["source"]
        if source not in secrets:
            close = difflib.get_close_matches(source, sorted(secrets), n=1)
            check.error(
                where,
                f"unknown secret '{source}'",
                f"did you mean '{close[0]}'?"
                if close
                else "declare it under the top-level secrets:",
            )
            continue
        target = str(spec.get("target", source))
        target = target if target.startswith("/") else f"/run/secrets/{target}"
        if posixpath.normpath(target) != target or "\n" in target or target == "/":
            check.error(where, f"target {target!r} is not a plain absolute path")
            continue
        if target in targets:
            check.error(where, f"two secrets go to {target}")
            continue
        targets.add(target)
        numbers = [_octal_mode(check, (*where, "mode"), spec.get("mode", "0400"))]
        numbers += [_id(check, (*where, k), spec.get(k, 0)) for k in ("uid", "gid")]
        if None not in numbers:
            mode, uid, gid = (n for n in numbers if n is not None)
            yield SecretUse(source, target, mode, uid, gid)


def _octal_mode(check: Checker, where: JsonPath, value: Any) -> int | None:
    """`0440` written as a YAML integer (decimal 440 in YAML 1.2) means octal, as in compose."""
    text = check.doc.raw.get(where, str(value)) if isinstance(value, int) else str(value)
    text = text.removeprefix("0o")
    if not re.fullmatch(r"0?[0-7]{3}", text):
        check.error(where, f"mode {text!r} is not an octal file mode", 'for example "0440"')
        return None
    return int(text, 8)


def _id(check: Checker, where: JsonPath, value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) < 2**31:
        return int(value)
    check.error(
        where, f"{value!r} is not a numeric id", "the guest's users may not exist yet at boot"
    )
    return None


def _listed(value: Any) -> list[Any]:
    """The items of a list in holos.yaml; none when it is something else (the schema
    reports that: checks go on with what is well-formed, to report every error at once)."""
    return value if isinstance(value, list) else []


def _environment(
    check: Checker, at: JsonPath, raw: dict[str, Any], files: Files
) -> tuple[tuple[str, str], ...]:
    """The guest's variables as compose resolves a service's: `environment:` (a bare
    `KEY` takes the project environment's value, or is unset), then the env files in
    order (their values interpolated with the project environment, then `environment:`,
    then the lines before), over which `environment:` wins, an unset `KEY` included."""
    project = check.doc.environ
    given: dict[str, tuple[JsonPath, str | None]] = {}
    for where, key, value in _given_environment(at, raw.get("environment")):
        given[key] = (where, project.get(key) if value is None else value)
    explicit = {k: v for k, (_, v) in given.items() if v is not None}
    values: dict[str, str] = dict(explicit)
    origin: dict[str, JsonPath] = {}
    lookup = collections.ChainMap(dict(project), explicit)
    for where, entry in _env_file_entries(at, raw.get("env_file")):
        parsed = _env_file(check, where, entry, files, lookup, values)
        if parsed is not None:
            values = parsed.values
            origin |= dict.fromkeys(parsed.keys, where)
    for key, (where, value) in given.items():
        values.pop(key, None)
        if value is not None:
            values[key] = value
            origin[key] = where
    return tuple((k, v) for k, v in values.items() if _env_ok(check, origin.get(k, at), k, v))


def _given_environment(at: JsonPath, given: Any) -> Iterable[tuple[JsonPath, str, str | None]]:
    """`environment:` entries: (where, key, value); None for a bare `KEY`."""
    if isinstance(given, dict):
        for key, value in given.items():
            if value is None:
                yield (*at, "environment", key), key, None
            else:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                yield (*at, "environment", key), key, text
    elif isinstance(given, list):
        for i, item in enumerate(given):
            key, sep, value = str(item).partition("=")
            yield (*at, "environment", i), key, value if sep else None


@dataclasses.dataclass(frozen=True)
class _EnvFile:
    path: str
    required: bool = True
    format: str | None = None


def _env_file_entries(at: JsonPath, listed: Any) -> Iterable[tuple[JsonPath, _EnvFile]]:
    if isinstance(listed, str):
        yield (*at, "env_file"), _EnvFile(listed)
        return
    for i, item in enumerate(listed if isinstance(listed, list) else []):
        if isinstance(item, str):
            yield (*at, "env_file", i), _EnvFile(item)
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            required = item.get("required", True) is not False
            fmt = item.get("format") if isinstance(item.get("format"), str) else None
            yield (*at, "env_file", i), _EnvFile(item["path"], required, fmt)


def _env_file(
    check: Checker,
    where: JsonPath,
    entry: _EnvFile,
    files: Files,
    lookup: Mapping[str, str],
    before: dict[str, str],
) -> Parsed | None:
    """One env file's variables over `before` (None when the file is optional and
    missing, or cannot be read or parsed: that is reported)."""
    rel = entry.path
    path = check.doc.directory / rel
    if not entry.required and files.kind(path) == "missing":
        return None
    try:
        text = files.read_bytes(path).decode("utf-8")
    except OSError as exc:
        check.error(where, f"cannot read env_file {rel}: {exc.strerror or exc}")
        return None
    except UnicodeDecodeError:
        check.error(where, f"env_file {rel} is not UTF-8 text")
        return None
    try:
        if entry.format == "raw":
            parsed = parse_raw(text, lookup)
            parsed.values = before | parsed.values
        else:
            parsed = parse_dotenv(text, lookup, before)
    except DotenvError as exc:
        check.error(where, f"{rel}:{exc.line}: {exc.message}")
        return None
    for line, name in dict.fromkeys(parsed.unset):
        check.warn(where, f"{rel}:{line}: variable {name} is not set; using an empty string")
    return parsed


def _env_ok(check: Checker, where: JsonPath, key: str, value: str) -> bool:
    if not ENV_NAME.fullmatch(key):
        check.error(
            where,
            f"'{key}' is not a variable name",
            "letters, digits and _, not starting with a digit",
        )
        return False
    if key == "_":
        # bash sets $_ to the last argument of every command: the value would be lost.
        check.error(where, "'_' is the shell's own variable", "choose another name")
        return False
    if re.search(r"[\x00\n\r]", value):
        check.error(
            where,
            f"the value of {key} has a line break or NUL, which sshd_config cannot carry",
        )
        return False
    if re.search("[\ud800-\udfff]", value):  # how Python keeps an environment's non-UTF-8
        check.error(where, f"the value of {key} holds bytes that are not UTF-8")
        return False
    return True


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _dockerfile(check: Checker, at: JsonPath, rel: str, files: Files) -> tuple[Any, Any]:
    path = check.doc.directory / rel
    where = (*at, "dockerfile")
    if _CONTROL.search(rel) or rel.endswith("\\"):
        # The path names the build in its unit's Description=, a one-line value.
        check.error(
            where,
            f"'{rel}': a Dockerfile path cannot hold control characters or end in '\\'",
            "rename the Dockerfile",
        )
        return None, UNREADABLE
    project_dir = files.realpath(check.doc.directory)
    if project_dir not in files.realpath(path).parents:
        check.error(
            where,
            f"Dockerfile '{rel}' is outside the project directory",
            "keep the Dockerfile and its build context beside holos.yaml",
        )
        return None, UNREADABLE
    try:
        text = files.read_bytes(path).decode("utf-8")
    except OSError as exc:
        check.error(where, f"cannot read Dockerfile '{rel}': {exc.strerror or exc}")
        return None, UNREADABLE
    except UnicodeDecodeError:
        check.error(where, f"Dockerfile '{rel}' is not UTF-8 text")
        return None, UNREADABLE
    if "\0" in text:  # no argv can carry it: the build's ssh to the builder would fail
        line = text.count("\n", 0, text.index("\0")) + 1
        check.error(where, f"{rel}:{line}: a NUL byte is not allowed in a Dockerfile")
        return None, UNREADABLE
    converted = dockerfile.convert(text, path.parent, files, rel)
    for finding in converted.findings:
        report = check.error if finding.severity == "error" else check.warn
        report(where, f"{rel}:{finding.line}: {finding.message}", finding.hint)
    return converted.build, converted.base_image


def _image(
    check: Checker, at: JsonPath, raw: dict[str, Any], base: str | None, files: Files
) -> Image:
    ref = raw.get("image") if isinstance(raw.get("image"), str) else base
    fmt = raw.get("image_format") if raw.get("image_format") in ("qcow2", "raw") else None
    os_family = raw.get("image_os") if raw.get("image_os") in ("systemd", "openrc") else None
    where = (*at, "image") if "image" in raw else (*at, "dockerfile")
    if base is UNREADABLE:  # already reported; the image is unknown, not missing
        return images.resolve("./missing.qcow2", fmt, os_family)
    if not ref:
        check.error(
            at,
            "needs an image (or a dockerfile with FROM)",
            f"for example image: ubuntu:noble; known images: {', '.join(images.known_refs())}",
            key=True,
        )
        return images.resolve("./missing.qcow2", fmt, os_family)
    try:
        image = images.resolve(ref, fmt, os_family)
    except KeyError:
        check.error(
            where,
            f"unknown image '{ref}'",
            f"use a local path (./disk.qcow2) or one of: {', '.join(images.known_refs())}",
        )
        return images.resolve("./missing.qcow2", fmt, os_family)
    if image.is_registry and fmt and fmt != image.format:
        check.error(
            (*at, "image_format"),
            f"'{ref}' is a {image.format} image; image_format applies to local images",
            "remove image_format",
        )
    return image  # whether its file exists: validate/hostfiles.py


def _vm(check: Checker, at: JsonPath, raw: Any) -> Vm:
    if not isinstance(raw, dict):
        return Vm()
    at = (*at, "vm")
    values = {
        k: raw[k]
        for k in (
            "vcpu",
            "memory_mb",
            "machine",
            "cpu_model",
            "uefi",
            "kernel",
            "initrd",
            "cmdline",
            "free_page_reporting",
            "ksm",
        )
        if k in raw
    }
    types = {"vcpu": int, "memory_mb": int, "uefi": bool, "free_page_reporting": bool, "ksm": bool}
    values = {k: v for k, v in values.items() if isinstance(v, types.get(k, str))}
    if isinstance(raw.get("extra_args"), list):
        values["extra_args"] = tuple(str(a) for a in raw["extra_args"])
    if isinstance(raw.get("disk_size"), str | int):
        values["disk_size"] = check.parse(
            (*at, "disk_size"), quantities.parse_size, raw["disk_size"]
        )
    for key in ("initrd", "cmdline"):
        if key in values and "kernel" not in values:
            check.error((*at, key), f"{key} needs vm.kernel (direct kernel boot)")
    for key, (valid, what, hint) in _QEMU_VALUES.items():
        if key in values and not _accepts(valid, values[key]):
            check.error((*at, key), f"'{values[key]}' is not {what}", hint)
            del values[key]
    return Vm(**values)


def _memory_sharing(
    check: Checker,
    at: JsonPath,
    raw: Any,
    vm: Vm,
    devices: tuple[Device, ...],
    mounts: tuple[Mount, ...],
) -> Vm:
    """What passthrough and bind mounts change: VFIO pins all guest RAM (UEFI needed, no
    page can be given back or merged); virtiofs puts guest RAM in a shared memfd, which
    KSM does not scan. Asking for what cannot work is a warning, not silence."""
    given = raw if isinstance(raw, dict) else {}
    passthrough = "has no effect with PCI passthrough (devices:)"
    if devices:
        if given.get("free_page_reporting") is True:
            check.warn(
                (*at, "free_page_reporting"),
                f"{passthrough}: VFIO pins guest memory, so QEMU ignores what the guest "
                "reports free",
                "remove it",
            )
        vm = dataclasses.replace(vm, uefi=True, free_page_reporting=False)
    if vm.ksm and devices:
        check.warn((*at, "ksm"), f"{passthrough}: KSM cannot merge pinned memory", "remove it")
    elif vm.ksm and any(m.kind is MountKind.BIND for m in mounts):
        check.warn(
            (*at, "ksm"),
            "has no effect with bind mounts: virtiofs puts guest memory in a shared memfd, "
            "which KSM does not merge",
            "remove it",
        )
    return vm


# vm values that land in a QEMU option's implied position or in -cpu, where QEMU has no
# escape (holos_runtime.optstrings): refused unless QEMU reads them back as written.
_QEMU_VALUES = {
    "machine": (
        qemu_name,
        "a QEMU machine type (letters, digits, '.', '_', '-'; "
        "qemu-system-x86_64 -machine help lists them)",
        "machine options go in vm.extra_args: ['-machine', 'smm=off']",
    ),
    "cpu_model": (
        qemu_cpu,
        "a QEMU CPU model with optional features (MODEL[,+FLAG|,-FLAG|,FLAG=VALUE...]; "
        "qemu-system-x86_64 -cpu help lists them)",
        "for example host, max or Skylake-Client",
    ),
}


def _accepts(valid: Callable[[str], str], value: str) -> bool:
    try:
        valid(value)
    except ValueError:
        return False
    return True


def _devices(check: Checker, at: JsonPath, raw: Any) -> tuple[Device, ...]:
    result: list[Device] = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict) or not isinstance(item.get("pci"), str):
            continue
        pci = check.parse((*at, "devices", i, "pci"), quantities.normalise_pci, item["pci"])
        if pci is None:
            continue
        if any(d.pci == pci for d in result):
            check.error((*at, "devices", i, "pci"), f"device {pci} is listed twice")
        rom = item.get("rom_file") if isinstance(item.get("rom_file"), str) else None
        result.append(Device(pci, rom))
    return tuple(result)


def _ports(check: Checker, at: JsonPath, raw: Any, replicas: int) -> Iterable[Port]:
    claimed: dict[int, str] = {}
    for i, spec in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(spec, str | int) or isinstance(spec, bool):
            continue
        where = (*at, "ports", i)
        text = check.doc.raw.get(where, str(spec))
        parsed = check.parse(where, quantities.parse_port, text)
        if parsed is None:
            continue
        host, guest, proto = parsed
        if host is not None:
            if host + replicas - 1 > 65535:
                check.error(
                    where,
                    f"host port {host} with {replicas} replicas would go past 65535",
                    "each replica uses the next host port",
                )
                continue
            for r in range(replicas):
                if host + r in claimed:
                    check.error(
                        where,
                        f"host port {host + r} is already used by '{claimed[host + r]}'",
                        "replica i uses host port + i",
                    )
                    break
                claimed[host + r] = text
        yield Port(guest, host, proto)


def _mounts(check: Checker, at: JsonPath, raw: Any, volumes: dict[str, Volume]) -> Iterable[Mount]:
    targets: set[str] = set()
    for i, spec in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(spec, str):
            continue
        where = (*at, "volumes", i)
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            check.error(where, f"'{spec}' is not SOURCE:TARGET[:ro|rw]")
            continue
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) == 3 else "rw"
        if mode not in ("ro", "rw"):
            check.error(where, f"unknown mode '{mode}'", "use ro or rw")
            continue
        if not target.startswith("/"):
            check.error(where, f"target '{target}' must be an absolute path in the guest")
            continue
        target = posixpath.normpath(target)
        if target in targets or target == "/":
            check.error(
                where,
                f"target '{target}' is mounted twice"
                if target in targets
                else "cannot mount over the guest's root directory",
            )
            continue
        targets.add(target)
        if source in volumes:
            yield Mount(MountKind.VOLUME, source, target, mode == "ro")
        elif source in (".", "..") or "/" in source or source.startswith("~"):
            if source.startswith("~"):
                check.error(
                    where,
                    f"'{source}': '~' is not expanded",
                    "use a path relative to holos.yaml or an absolute path",
                )
                continue
            yield Mount(MountKind.BIND, source, target, mode == "ro")
        else:
            check.error(
                where,
                f"'{source}' is not a declared volume and not a path",
                f"declare it under top-level volumes:, or write ./{source} for "
                "a directory beside holos.yaml",
            )


def _depends_on(check: Checker, at: JsonPath, raw: Any) -> Iterable[Dependency]:
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, str):
                yield Dependency(item)
    elif isinstance(raw, dict):
        for name, spec in raw.items():
            spec = spec if isinstance(spec, dict) else {}
            condition = spec.get("condition")
            if condition is None or condition in tuple(Condition):
                yield Dependency(
                    name,
                    Condition(condition) if condition else None,
                    spec.get("required", True) is True,
                    spec.get("restart", False) is True,
                )


def _healthcheck(check: Checker, at: JsonPath, raw: Any) -> Healthcheck | None:
    if not isinstance(raw, dict) or raw.get("disable") is True:
        return None
    at = (*at, "healthcheck")
    test = _test_argv(check, (*at, "test"), raw.get("test"))
    if test is None:
        return None
    values: dict[str, int] = {}
    for key in ("interval", "timeout", "start_period"):
        if isinstance(raw.get(key), str | int | float):
            ms = check.parse((*at, key), quantities.parse_duration_ms, raw[key])
            if ms is not None:
                if ms == 0 and key != "start_period":
                    check.error((*at, key), f"{key} must be greater than 0")
                values[f"{key}_ms"] = ms
    retries = raw.get("retries", 3) if isinstance(raw.get("retries"), int) else 3
    return Healthcheck(test, retries=retries, **values)


def _test_argv(check: Checker, where: JsonPath, test: Any) -> tuple[str, ...] | None:
    """Compose test forms: "cmd" | [CMD, ...] | [CMD-SHELL, "cmd"] | [NONE] | [argv...]."""
    if test is None:
        check.error(where[:-1], "healthcheck needs a test", 'e.g. test: ["true"]')
        return None
    if isinstance(test, str):
        if not test.strip():
            check.error(where, "test must not be empty")
            return None
        return ("sh", "-c", test)
    if not isinstance(test, list) or not test:
        return None
    head, rest = test[0], [str(t) for t in test[1:]]
    if head == "NONE":
        return None
    if head == "CMD-SHELL":
        if len(rest) != 1:
            check.error(where, "CMD-SHELL takes exactly one command string")
            return None
        return ("sh", "-c", rest[0])
    argv = rest if head == "CMD" else [str(t) for t in test]
    if not argv:
        check.error(where, "test must name a command")
        return None
    return tuple(argv)


def _cloud_init(check: Checker, at: JsonPath, raw: Any, image: Image) -> CloudInit:
    user = image.default_user or FALLBACK_USER
    if not isinstance(raw, dict):
        return CloudInit(user=user)
    at = (*at, "cloud_init")
    if isinstance(raw.get("user"), str):
        user = raw["user"]
        if not USER.fullmatch(user):
            check.error(
                (*at, "user"),
                f"'{user}' is not a valid user name",
                "POSIX user names: lowercase letters, digits, '_' and '-', "
                "starting with a letter or '_', at most 32 characters",
            )
    write_files = []
    for i, item in enumerate(_listed(raw.get("write_files"))):
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            write_files.append(_write_file(check, (*at, "write_files", i), item))

    def strings(key: str) -> tuple[str, ...]:
        value = raw.get(key)
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

    def commands(key: str) -> tuple[str | tuple[str, ...], ...]:
        value = raw.get(key)
        if not isinstance(value, list):
            return ()
        return tuple(
            v if isinstance(v, str) else tuple(map(str, v))
            for v in value
            if isinstance(v, str | list)
        )

    return CloudInit(
        user,
        strings("ssh_authorized_keys"),
        strings("packages"),
        tuple(write_files),
        commands("runcmd"),
        commands("bootcmd"),
    )


def _write_file(check: Checker, where: JsonPath, item: dict[str, Any]) -> WriteFile:
    path = item["path"]
    if not path.startswith("/"):
        check.error((*where, "path"), f"'{path}' must be an absolute path in the guest")
    permissions = "0644"
    if "permissions" in item:
        # The raw text keeps what the user wrote: 0755 must not become the integer 755.
        permissions = check.doc.raw.get((*where, "permissions"), str(item["permissions"]))
        if not PERMISSIONS.fullmatch(permissions):
            check.error(
                (*where, "permissions"),
                f"'{permissions}' is not an octal mode",
                'quote it, e.g. permissions: "0644"',
            )
        permissions = permissions.rjust(4, "0")
    content = item["content"] if isinstance(item.get("content"), str) else ""
    if dockerfile.looks_like_key(posixpath.basename(path), content):
        check.warn(
            (*where, "content") if "content" in item else (*where, "path"),
            "this file looks like a private key; it is written in plaintext into user-data "
            "and seed.iso, which are readable and often committed",
        )
    owner = item["owner"] if isinstance(item.get("owner"), str) else "root:root"
    return WriteFile(path, content, permissions, owner)
