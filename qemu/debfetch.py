"""qemu/debfetch.py: Debian packages of any architecture, through a private apt state.

The machine's own apt configuration is read, never changed: the Debian archive entries
of /etc/apt/sources.list and /etc/apt/sources.list.d (one-line and deb822 formats) for
the guests' release are copied into a sources.list of our own, and apt-get runs with
Dir::State, Dir::Cache and Dir::Etc::SourceList pointing into the cache directory and
APT::Architecture set to the guest's architecture. No `dpkg --add-architecture`, no
file in /etc/apt is touched. apt.conf.d is still read, so a proxy set there works.

    python3 qemu/debfetch.py ARCH PACKAGE...     # downloads into the cache, prints paths
"""

import glob
import json
import os
import re
import subprocess
import sys
import tarfile

from guests import SUITE, cache_dir

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _one_line_entries(text):
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        options = {}
        m = re.match(r"deb\s+\[([^\]]*)\]\s+(.*)", line)
        if m:
            for opt in m.group(1).split():
                k, _, v = opt.partition("=")
                options[k.lower()] = v
            rest = m.group(2).split()
        else:
            rest = line.split()[1:]
        if len(rest) >= 3:
            yield {"uris": [rest[0]], "suites": [rest[1]], "components": rest[2:],
                   "signed-by": options.get("signed-by")}


def _deb822_entries(text):
    for stanza in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
                continue
            k, sep, v = line.partition(":")
            if sep:
                key = k.strip().lower()
                fields[key] = v.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        signed = fields.get("signed-by")
        if signed and "\n" in signed:  # an inline key: fall back to the keyring
            signed = None
        yield {"uris": fields.get("uris", "").split(), "suites": fields.get("suites", "").split(),
               "components": fields.get("components", "").split(), "signed-by": signed}


def host_sources(etc="/etc/apt"):
    """The machine's apt entries for the guests' release and its -updates/-security
    suites, main component: [(uri, suite, signed_by)]."""
    entries = []
    files = [os.path.join(etc, "sources.list")] + sorted(glob.glob(os.path.join(etc, "sources.list.d", "*.list")))
    for path in files:
        if os.path.isfile(path):
            with open(path) as f:
                entries += list(_one_line_entries(f.read()))
    for path in sorted(glob.glob(os.path.join(etc, "sources.list.d", "*.sources"))):
        with open(path) as f:
            entries += list(_deb822_entries(f.read()))
    found = []
    for e in entries:
        if "main" not in e["components"]:
            continue
        for suite in e["suites"]:
            if suite == SUITE or suite.startswith(SUITE + "-"):
                for uri in e["uris"]:
                    item = (uri.rstrip("/"), suite, e["signed-by"] or KEYRING)
                    if item not in found:
                        found.append(item)
    return found


class Apt:
    """apt-get and apt-cache for one architecture, with a private state directory."""

    def __init__(self, arch, root=None):
        self.arch = arch
        self.root = os.path.join(root or cache_dir(), "apt", arch)
        self.debs = os.path.join(root or cache_dir(), "debs", arch)
        for sub in ("state/lists/partial", "cache/archives/partial", "etc/sources.list.d",
                    "etc/preferences.d"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        os.makedirs(self.debs, exist_ok=True)
        self.sources = os.path.join(self.root, "etc", "sources.list")

    def options(self):
        r = self.root
        return ["-o", "Dir::State=" + os.path.join(r, "state"),
                "-o", "Dir::State::status=" + os.path.join(r, "state", "status"),
                "-o", "Dir::Cache=" + os.path.join(r, "cache"),
                # The machine may switch the binary caches off; ours are private.
                "-o", "Dir::Cache::pkgcache=pkgcache.bin",
                "-o", "Dir::Cache::srcpkgcache=srcpkgcache.bin",
                "-o", "Dir::Etc::SourceList=" + self.sources,
                "-o", "Dir::Etc::SourceParts=" + os.path.join(r, "etc", "sources.list.d"),
                "-o", "Dir::Etc::Preferences=" + os.path.join(r, "etc", "preferences"),
                "-o", "Dir::Etc::PreferencesParts=" + os.path.join(r, "etc", "preferences.d"),
                "-o", "APT::Architecture=" + self.arch,
                "-o", "APT::Architectures=" + self.arch,
                "-o", "Debug::NoLocking=1",
                "-o", "Acquire::http::Timeout=60",
                "-o", "Acquire::Retries=2",
                "-o", "APT::Get::AllowUnauthenticated=false"]

    def _run(self, tool, *args, check=True):
        p = subprocess.run([tool] + self.options() + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=self.debs)
        if check and p.returncode != 0:
            raise RuntimeError("%s %s failed (%d):\n%s" % (tool, " ".join(args), p.returncode,
                                                           p.stderr[-4000:]))
        return p

    def has_lists(self):
        lists = os.path.join(self.root, "state", "lists")
        return any("_binary-%s_Packages" % self.arch in n for n in os.listdir(lists))

    def update(self, force=False):
        """apt-get update, once (a warm cache needs no network). A suite whose index
        cannot be fetched (a mirror in sync, say) is reported and left out, as long
        as the release's own index arrived."""
        if self.has_lists() and not force:
            return []
        sources = host_sources()
        if not sources:
            raise RuntimeError("no Debian %s entry with component main in /etc/apt/sources.list(.d)"
                               % SUITE)
        status = os.path.join(self.root, "state", "status")
        if not os.path.exists(status):
            open(status, "w").close()
        with open(self.sources, "w") as f:
            for uri, suite, keyring in sources:
                f.write("deb [arch=%s signed-by=%s] %s %s main\n" % (self.arch, keyring, uri, suite))
        p = self._run("apt-get", "-q", "update", check=False)
        problems = [l for l in p.stderr.splitlines() if l.startswith(("E:", "W:"))]
        lists = os.listdir(os.path.join(self.root, "state", "lists"))
        if not any(("dists_%s_main_binary-%s_Packages" % (SUITE, self.arch)) in n for n in lists):
            raise RuntimeError("apt-get update for %s failed:\n%s" % (self.arch, p.stderr[-4000:]))
        return problems

    def show(self, package):
        """{field: value} of the candidate version of package."""
        p = self._run("apt-cache", "show", "--no-all-versions", package)
        fields, key = {}, None
        for line in p.stdout.splitlines():
            if not line.strip():
                break
            if line[0] in " \t" and key:
                fields[key] += "\n" + line.strip()
                continue
            k, _, v = line.partition(":")
            key = k.strip()
            fields[key] = v.strip()
        return fields

    def download(self, package, _retry=True):
        """Path of the candidate .deb of package, downloaded once into the cache. If the
        mirror no longer has the version the cached lists name, the lists are
        refreshed once."""
        try:
            return self._download(package)
        except RuntimeError:
            if not _retry:
                raise
            self.update(force=True)
            return self.download(package, _retry=False)

    def _download(self, package):
        fields = self.show(package)
        version = fields["Version"]
        name = "%s_%s_%s.deb" % (package, version.replace(":", "%3a"),
                                 fields.get("Architecture", self.arch))
        path = os.path.join(self.debs, name)
        if not os.path.exists(path):
            self._run("apt-get", "-q", "download", "%s=%s" % (package, version))
            if not os.path.exists(path):
                got = glob.glob(os.path.join(self.debs, "%s_*.deb" % package))
                raise RuntimeError("apt-get download %s gave no %s (found %s)" % (package, name, got))
        return path


def depends(fields, field="Depends"):
    """Package names of a Depends-style field (first of each alternative)."""
    out = []
    for item in (fields.get(field) or "").split(","):
        item = item.split("|")[0].strip()
        name = re.split(r"[\s(:]", item)[0]
        if name:
            out.append(name)
    return out


def extract(deb, dest):
    """dpkg-deb -x deb dest (once: a stamp file marks a complete extraction)."""
    stamp = os.path.join(dest, ".extracted-" + os.path.basename(deb))
    if os.path.exists(stamp):
        return dest
    os.makedirs(dest, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", deb, dest], check=True)
    open(stamp, "w").close()
    return dest


def stream_members(deb, want):
    """Iterate (TarInfo, bytes or None) over the data of deb without unpacking it to
    disk; want(name) says which members' contents to read."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as t:
            for m in t:
                data = t.extractfile(m).read() if m.isfile() and want(m.name) else None
                yield m, data
    finally:
        proc.stdout.close()
        proc.wait()


def main():
    arch, packages = sys.argv[1], sys.argv[2:]
    apt = Apt(arch)
    for problem in apt.update():
        print(problem, file=sys.stderr)
    print(json.dumps({p: apt.download(p) for p in packages}, indent=1))


if __name__ == "__main__":
    main()
