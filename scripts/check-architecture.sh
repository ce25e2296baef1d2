#!/usr/bin/env bash
# Keeps docs/architecture.md true: its module graph (the ```architecture block) must be the one Package.swift
# declares, no module may depend on one in its own layer or above, and every `import` of this package's modules (or of
# a dependency's product) in a target's sources must be a dependency that target declares.
#
#   scripts/check-architecture.sh           check; exits 1 with one line per problem
#   scripts/check-architecture.sh --print   print the block as Package.swift has it (layers kept from the document,
#                                           '?' for a new target), to paste into docs/architecture.md
#
# Reads `swift package dump-package` (targets and their dependencies) and `swift package show-dependencies` (the
# packages); needs only bash and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

dump="$(mktemp)"
packages="$(mktemp)"
trap 'rm -f "${dump}" "${packages}"' EXIT
swift package dump-package > "${dump}"
swift package show-dependencies --format json > "${packages}"

python3 - "${dump}" "${packages}" docs/architecture.md "${1:-}" << 'PYTHON'
import json
import os
import re
import sys

dump_path, packages_path, doc_path, mode = sys.argv[1:5]
dump = json.load(open(dump_path))
problems = []

# Package.swift: every target but the tests, with its targets and the packages of its products.
declared = {}
product_names = set()
for target in dump["targets"]:
    if target["type"] == "test":
        continue
    targets, packages, products = set(), set(), set()
    for dependency in target["dependencies"]:
        if "byName" in dependency:
            targets.add(dependency["byName"][0])
        elif "target" in dependency:
            targets.add(dependency["target"][0])
        elif "product" in dependency:
            products.add(dependency["product"][0])
            packages.add(dependency["product"][1].lower())
    product_names |= products
    declared[target["name"]] = {
        "kind": "executable" if target["type"] == "executable" else "library",
        "path": target.get("path") or os.path.join("Sources", target["name"]),
        "targets": targets,
        "packages": packages,
        "products": products,
    }

# The document's block: `<target> <kind> <layer> <targets…> | <packages…>`, one line per target.
text = open(doc_path).read()
blocks = re.findall(r"^```architecture\n(.*?)^```", text, re.S | re.M)
if len(blocks) != 1:
    sys.exit(f"{doc_path}: expected one ```architecture block, found {len(blocks)}")
documented = {}
for number, line in enumerate(blocks[0].splitlines(), 1):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    left, _, right = line.partition("|")
    fields = left.split()
    if len(fields) < 3 or not fields[2].isdigit():
        problems.append(f"{doc_path}: block line {number}: expected '<target> <kind> <layer> <targets…> | <packages…>'")
        continue
    name, kind, layer = fields[0], fields[1], int(fields[2])
    if name in documented:
        problems.append(f"{doc_path}: {name} is listed twice")
    documented[name] = {"kind": kind, "layer": layer, "targets": set(fields[3:]), "packages": set(right.split())}

if mode == "--print":
    rows = []
    for name, target in declared.items():
        layer = documented.get(name, {}).get("layer", "?")
        rows.append((layer if layer != "?" else 99, name, target, layer))
    for _, name, target, layer in sorted(rows, key=lambda row: (row[0], row[1].lower())):
        targets = " ".join(sorted(target["targets"], key=str.lower))
        packages = " ".join(sorted(target["packages"]))
        print(f"{name:<20} {target['kind']:<10} {layer:<2} {targets} | {packages}".rstrip())
    sys.exit(0)

# 1. The document and Package.swift name the same targets, with the same dependencies.
for name in sorted(declared.keys() - documented.keys()):
    problems.append(f"{name}: a target in Package.swift, missing from {doc_path}")
for name in sorted(documented.keys() - declared.keys()):
    problems.append(f"{name}: in {doc_path}, but Package.swift has no such target")
for name in sorted(declared.keys() & documented.keys()):
    ours, theirs = declared[name], documented[name]
    if ours["kind"] != theirs["kind"]:
        problems.append(f"{name}: Package.swift makes it a {ours['kind']} target, {doc_path} says {theirs['kind']}")
    for what in ("targets", "packages"):
        for extra in sorted(ours[what] - theirs[what]):
            problems.append(f"{name}: Package.swift depends on {extra}, which {doc_path} does not list")
        for missing in sorted(theirs[what] - ours[what]):
            problems.append(f"{name}: {doc_path} lists {missing}, which Package.swift does not declare")

# 2. Layers: a module depends only on modules in layers below its own.
for name in sorted(declared.keys() & documented.keys()):
    for dependency in sorted(declared[name]["targets"]):
        if dependency in documented and documented[dependency]["layer"] >= documented[name]["layer"]:
            problems.append(
                f"{name} (layer {documented[name]['layer']}) depends on {dependency} (layer {documented[dependency]['layer']}): "
                "a module may depend only on modules in layers below its own"
            )

# 3. The packages: what show-dependencies lists is what the document's modules use.
top = {package["identity"].lower() for package in json.load(open(packages_path))["dependencies"]}
used = set().union(*(target["packages"] for target in documented.values())) if documented else set()
for package in sorted(top - used):
    problems.append(f"{package}: swift package show-dependencies lists it, but no module in {doc_path} uses it")
for package in sorted(used - top):
    problems.append(f"{package}: used in {doc_path}, but swift package show-dependencies does not list it")

# 4. Imports: a target's sources import only the modules it declares (this package's targets and its products),
#    never one it merely reaches through another module, and every declared target is imported somewhere.
import_line = re.compile(
    r"^\s*(?:@[\w()]+\s+)*(?:public\s+|package\s+|internal\s+|fileprivate\s+|private\s+)?import\s+"
    r"(?:(?:struct|class|enum|protocol|typealias|func|var|let|actor)\s+)?(\w+)"
)
for name, target in sorted(declared.items()):
    imported = {}
    for folder, _, files in os.walk(target["path"]):
        for file in files:
            if not file.endswith(".swift"):
                continue
            path = os.path.join(folder, file)
            for number, line in enumerate(open(path, encoding="utf-8"), 1):
                match = import_line.match(line)
                if match:
                    imported.setdefault(match.group(1), f"{path}:{number}")
    for module, where in sorted(imported.items()):
        if module in declared and module not in target["targets"]:
            above = ""
            if module in documented and name in documented and documented[module]["layer"] >= documented[name]["layer"]:
                above = f", and it is not below {name} (layer {documented[module]['layer']} vs {documented[name]['layer']})"
            problems.append(f"{where}: {name} imports {module}, which it does not declare as a dependency{above}")
        elif module in product_names and module not in target["products"] and module not in declared:
            problems.append(f"{where}: {name} imports {module}, a product it does not declare (it only reaches it through another module)")
    for dependency in sorted(target["targets"] - imported.keys()):
        problems.append(f"{name}: declares {dependency} as a dependency but no file in {target['path']} imports it")

for problem in problems:
    print(f"check-architecture: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"check-architecture: {len(declared)} targets, their dependencies, layers and imports agree with {doc_path}")
PYTHON
