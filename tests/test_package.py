from __future__ import annotations

import ast
import builtins
import importlib.metadata
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import kirim_async


def test_public_names_are_pinned() -> None:
    assert sorted(kirim_async.__all__) == sorted(
        [
            "APIConnectionError",
            "APIStatusError",
            "APITimeoutError",
            "AuthenticationError",
            "BulkError",
            "BulkResult",
            "ClientClosedError",
            "CreateLabel",
            "DuplicateLabelError",
            "ExistsReason",
            "Hooks",
            "InvalidParameterError",
            "InvalidRequestError",
            "KirimClient",
            "KirimError",
            "Label",
            "LabelColor",
            "LabelOutcome",
            "LabelResponse",
            "Labels",
            "MalformedResponseError",
            "NotFoundError",
            "OutcomeStatus",
            "PermissionDeniedError",
            "PoolTimeoutError",
            "ProxyError",
            "RateLimitError",
            "RequestEvent",
            "ResponseEvent",
            "RetryEvent",
            "RetryPolicy",
            "ServerError",
            "SkipReason",
            "__version__",
            "bulk_create_labels",
            "iter_bulk_create_labels",
        ]
    )
    for name in kirim_async.__all__:
        assert hasattr(kirim_async, name), name


def test_ships_py_typed_and_version() -> None:
    assert (Path(kirim_async.__file__).parent / "py.typed").exists()
    assert kirim_async.__version__.count(".") == 2


def _release(version: str) -> tuple[int, ...]:
    parts = [int(part) for part in version.split(".")]
    while parts and parts[-1] == 0:  # 2.2 and 2.2.0 are one release
        parts.pop()
    return tuple(parts)


def test_lowest_versions_pinned_for_ci_are_the_declared_lower_bounds() -> None:
    # .ci/run tests on these pins: one left behind when a bound moves would test some
    # other version than the lowest a user may have.
    declared = {}
    for requirement in importlib.metadata.requires("kirim-async") or []:
        spec, _, marker = requirement.partition(";")
        extra = re.search(r"extra == [\"'](\w+)[\"']", marker)
        if extra is not None and extra.group(1) not in {"fast", "test"}:
            continue
        match = re.fullmatch(r"([\w.-]+)(?:\[[\w,]+\])?\s*>=\s*([\d.]+)", spec.strip())
        assert match, f"{requirement!r} has no lower bound to test"
        declared[match.group(1).lower()] = _release(match.group(2))
    pins_file = Path(__file__).parent.parent / ".ci" / "lowest-versions.txt"
    pinned = {}
    for line in pins_file.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.strip().lower()] = _release(version.strip())
    assert pinned == declared


def test_pure_modules_do_not_import_aiohttp() -> None:
    code = (
        "import sys\n"
        "import kirim_async.models, kirim_async.errors, kirim_async._config\n"
        "import kirim_async._converters, kirim_async._sansio, kirim_async._retry\n"
        "import kirim_async._hints\n"
        "import kirim_async.pacing\n"
        "assert 'aiohttp' not in sys.modules, sorted(m for m in sys.modules if 'aiohttp' in m)\n"
    )
    # Importing the package itself pulls in the client, so load the modules without it.
    code = "import sys, types\n" + code.replace(
        "import sys\n",
        "pkg = types.ModuleType('kirim_async'); "
        f"pkg.__path__ = [{str(Path(kirim_async.__file__).parent)!r}]; "
        "sys.modules['kirim_async'] = pkg\n",
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_testing_does_not_import_the_client() -> None:
    code = (
        "import sys, types\n"
        "pkg = types.ModuleType('kirim_async'); "
        f"pkg.__path__ = [{str(Path(kirim_async.__file__).parent)!r}]; "
        "sys.modules['kirim_async'] = pkg\n"
        "import kirim_async.testing\n"
        "assert 'kirim_async._client' not in sys.modules\n"
        "assert 'kirim_async._transport' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_quickstart_example_runs() -> None:
    # The README points newcomers at it: it must keep working as the API changes.
    example = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"
    result = subprocess.run(
        [sys.executable, "-W", "error", str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" as ")[0] for line in lines[:3]] == [
        "created 'bug' (red)",
        "created 'feature' (green)",
        "created 'docs' (sky)",
    ]
    assert lines[3].startswith("duplicate: 400 invalid_field_value")
    assert lines[4].startswith("refused before sending: name: must be a string of 1-50")
    assert lines[5:] == ["the server holds 3 labels"]


# Names the README's snippets use as given, without defining them: a snippet is a
# fragment of the reader's own code, or follows the snippet that made them.
_README_PLACEHOLDERS = {"client", "name", "color", "my_aiohttp_trace_config"}


def test_the_readme_is_short_enough_to_read() -> None:
    # CONTRIBUTING.md: the README is for users, at most 250 lines; the reference is in docs/.
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250


def test_readme_and_docs_snippets_import_what_they_use() -> None:
    # A snippet that uses a name it does not import fails when copied (the bulk one
    # used CreateLabel without importing it).
    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    snippets = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(snippets) >= 10
    for snippet in snippets:
        # Top-level await and async with are fine inside a function.
        tree = ast.parse("async def snippet():\n" + textwrap.indent(snippet, "    "))
        defined = set(dir(builtins)) | _README_PLACEHOLDERS
        used: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.alias):
                defined.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defined.add(node.name)
                defined.update(arg.arg for arg in node.args.args)
            elif isinstance(node, ast.Name):
                (used if isinstance(node.ctx, ast.Load) else defined).add(node.id)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                defined.add(node.name)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
        assert used <= defined, (sorted(used - defined), snippet[:60])


def test_the_readme_testing_snippet_passes_as_copied(tmp_path: Path) -> None:
    # Under pytest-asyncio's default (strict) mode, as a reader's project would run it.
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    (snippet,) = [
        s for s in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "# conftest.py" in s
    ]
    files = re.split(r"^# (\w+\.py)\n", snippet, flags=re.MULTILINE)[1:]
    assert files[::2] == ["conftest.py", "test_seeder.py"]
    for name, text in zip(files[::2], files[1::2], strict=True):
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"),
            *("-o", "asyncio_mode=strict", "-o", "asyncio_default_fixture_loop_scope=function"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


_PACKAGE = Path(kirim_async.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(_PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every import of a module: the absolute module, and the names taken from it."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.append((base, [alias.name for alias in node.names]))
    return found


_MODULES = {_module_name(path): path for path in sorted(_PACKAGE.rglob("*.py"))}


def _reaches(importer: str, prefix: str) -> list[str]:
    return [
        module
        for module, _ in _imports(_MODULES[importer])
        if module == prefix or module.startswith(prefix + ".")
    ]


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        # The retrier knows nothing of pacing or jobs; the request path nothing of jobs.
        ("kirim_async._retry", "kirim_async.pacing"),
        ("kirim_async._retry", "kirim_async.bulk"),
        ("kirim_async._retry", "kirim_async._client"),
        ("kirim_async._client", "kirim_async.bulk"),
        ("kirim_async._client", "kirim_async.cli"),
        ("kirim_async._client", "kirim_async.pacing._gate"),
        ("kirim_async._client", "kirim_async.pacing._protocol"),
        ("kirim_async.bulk._job", "kirim_async.cli"),
        *(
            (pacing, forbidden)
            for pacing in _MODULES
            if pacing.startswith("kirim_async.pacing")
            for forbidden in (
                "aiohttp",
                "kirim_async._client",
                "kirim_async._retry",
                "kirim_async._transport",
                "kirim_async.bulk",
                "kirim_async.cli",
            )
        ),
    ],
)
def test_layering(importer: str, forbidden: str) -> None:
    assert _reaches(importer, forbidden) == []


def test_no_private_name_is_imported_from_another_module() -> None:
    # Modules are named by their role (_json, _sansio); the names in them are not
    # reached past their underscore from anywhere else in the package.
    crossing = [
        f"{importer} imports {name} from {module}"
        for importer, path in _MODULES.items()
        for module, names in _imports(path)
        for name in names
        if module.startswith("kirim_async")
        and name.startswith("_")
        and name != "__version__"
        and f"{module}.{name}" not in _MODULES  # a module of the package, not a name
    ]
    assert crossing == []
