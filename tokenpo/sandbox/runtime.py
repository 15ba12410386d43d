"""What of the host a sandboxed program sees: the Python runtime it runs on, and nothing else.

A program needs the interpreter, its standard library, the shared libraries they load and the
dynamic loader -- not the rest of ``/usr`` (other programs, configuration files, third-party
packages). :func:`runtime_files` asks the sandbox's interpreter itself, once per harness process:
it imports every extension module of its standard library (so every library any of them loads is
mapped) and reports the files it has mapped, the loader its executable names and where its
standard library lives. :func:`exposures` turns that into the steps that rebuild exactly those
paths, symlinks included, inside the sandbox's empty root (``launcher.minimal_root`` replays them).

Site-packages are not among them: the interpreter runs with ``-S`` and its site folders are not
exposed, so a program imports the standard library only.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess

# Runs in the sandbox's interpreter (-I -S): maps every extension module of the standard library.
_PROBE = r"""
import importlib, json, os, struct, sys, sysconfig
paths = sysconfig.get_paths()
folders = [p for p in sys.path if p.endswith("lib-dynload") and os.path.isdir(p)]
for folder in folders:
    for name in sorted(os.listdir(folder)):
        module = name.split(".")[0]
        if module.startswith(("_test", "xx", "_xx", "_ctypes_test")):
            continue
        try:
            importlib.import_module(module)
        except Exception:
            pass  # its library is absent on this host: the program cannot import it either
mapped = set()
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/") and not parts[5].rstrip().endswith("(deleted)"):
            mapped.add(parts[5].rstrip("\n"))
interpreter = None
with open(sys.executable, "rb") as elf:
    head = elf.read(64)
    if head[:4] == b"\x7fELF" and head[4] == 2:
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        for index in range(phnum):
            elf.seek(phoff + index * phentsize)
            kind, _, offset, _, _, size = struct.unpack("<IIQQQQ", elf.read(40))
            if kind == 3:  # PT_INTERP
                elf.seek(offset)
                interpreter = elf.read(size).rstrip(b"\0").decode()
zones = []
try:
    import zoneinfo
    zones = [p for p in zoneinfo.TZPATH if os.path.isdir(p)]
except Exception:
    pass
print(json.dumps({
    "executable": os.path.realpath(sys.executable),
    "stdlib": sorted({os.path.realpath(paths["stdlib"]), os.path.realpath(paths["platstdlib"])}),
    "site": sorted({os.path.realpath(paths[k]) for k in ("purelib", "platlib") if k in paths}),
    "mapped": sorted(mapped),
    "interpreter": interpreter,
    "zoneinfo": zones,
}))
"""

# Folders the dynamic loader searches by default when there is no /etc/ld.so.cache (glibc, multiarch).
_LOADER_FOLDERS = ("/lib", "/lib64", "/usr/lib64", "/lib32", "/libx32")


@functools.lru_cache(maxsize=4)
def runtime_files(python: str) -> dict:
    """What ``python`` (the sandbox's interpreter) needs at run time; see the module docstring."""
    done = subprocess.run(
        [python, "-I", "-S", "-c", _PROBE], capture_output=True, text=True, timeout=120, env={"LANG": "C.UTF-8"}
    )
    if done.returncode != 0:
        raise RuntimeError(f"could not list the sandbox interpreter's runtime: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)


def _aliases(path: str) -> list[str]:
    """Symlinks in ``path``'s folder that resolve to it (a library's soname, such as ``libz.so.1``)."""
    folder, real = os.path.dirname(path), os.path.realpath(path)
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    for entry in entries:
        if entry.is_symlink() and os.path.realpath(entry.path) == real:
            found.append(entry.path)
    return found


def _expose(path: str, steps: dict[str, tuple[str, ...]]) -> None:
    """Add the steps that make ``path`` resolve inside the root as on the host: every symlink on the
    way recreated, every folder made, the final file or folder bound read-only."""
    current, rest, hops = "/", [p for p in path.split("/") if p], 0
    while rest:
        part = rest.pop(0)
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:  # a symlink loop: leave the path out
                return
            target = os.readlink(candidate)
            steps.setdefault(candidate, ("symlink", candidate, target))
            resolved = os.path.normpath(os.path.join(current, target))
            current, rest = "/", [p for p in resolved.split("/") if p] + rest
            continue
        if not os.path.lexists(candidate):
            return
        if rest:
            steps.setdefault(candidate, ("dir", candidate))
            current = candidate
        else:
            steps[candidate] = ("bind", candidate)


def exposures(files: dict) -> list[tuple[str, ...]]:
    """The steps (``("dir", path)``, ``("symlink", path, target)``, ``("bind", path)``) that rebuild the
    runtime in an empty root: folders and symlinks first, then binds, a folder's before what is inside."""
    steps: dict[str, tuple[str, ...]] = {}
    wanted = [files["executable"], *files["stdlib"], *files["zoneinfo"]]
    if files.get("interpreter"):
        wanted.append(files["interpreter"])
    for mapped in files["mapped"]:
        wanted += [mapped, *_aliases(mapped)]
    for path in wanted:
        _expose(path, steps)
    for folder in _LOADER_FOLDERS:  # the folder itself as a symlink, not everything it leads to
        if os.path.islink(folder):
            steps.setdefault(folder, ("symlink", folder, os.readlink(folder)))
            target = os.path.normpath(os.path.join("/", os.readlink(folder)))
            steps.setdefault(target, ("dir", target))
    binds = sorted((s for s in steps.values() if s[0] == "bind"), key=lambda s: (s[1].count("/"), s[1]))
    kept: list[tuple[str, ...]] = []
    for step in binds:  # a file inside a folder already bound is there already
        if not any(step[1].startswith(other[1].rstrip("/") + "/") for other in kept):
            kept.append(step)
    others = [s for s in steps.values() if s[0] != "bind"]
    return sorted(others, key=lambda s: s[1].count("/")) + kept


def hidden(files: dict) -> list[str]:
    """Folders inside an exposed standard library that hold third-party packages: covered by an empty
    folder in the sandbox, so a program cannot read (or import) what is installed there."""
    return [site for site in files["site"] if any(site.startswith(lib.rstrip("/") + "/") for lib in files["stdlib"])]


@functools.lru_cache(maxsize=4)
def described(python: str) -> str:
    """The launcher's argument for ``python``: the steps and the hidden folders, as JSON. Computed once
    per harness process (lm-eval's metric starts launchers for every problem; the steps scan folders)."""
    files = runtime_files(python)
    return json.dumps({"steps": exposures(files), "hidden": hidden(files)})
