"""How a bundle's requirements are derived from what its code imports."""

from __future__ import annotations

import pytest

from infra import bundle


def test_a_module_installed_by_a_dependency_maps_to_the_pinned_requirement_that_brings_it():
    assert bundle.requirements_for({"flask", "werkzeug.exceptions"}) == ["functions-framework==3.10.2"]


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("google.cloud.scheduler_v1", "google-cloud-scheduler==2.21.0"),
        ("firebase_admin.messaging", "firebase-admin==7.7.0"),
        ("google.cloud.sql.connector", "cloud-sql-python-connector==1.23.0"),
        ("google.oauth2.id_token", "google-auth==2.63.0"),
        ("jwt", "PyJWT[crypto]==2.15.1"),
        ("pg8000.native", "pg8000==1.31.6"),
    ],
)
def test_namespace_packages_map_to_the_distribution_that_owns_the_submodule(module, line):
    assert bundle.requirements_for({module}) == sorted({line, "functions-framework==3.10.2"}, key=str.lower)


def test_an_import_nothing_pins_fails_the_build():
    with pytest.raises(bundle.BundleError, match="no installed distribution"):
        bundle.requirements_for({"surely_not_installed_anywhere"})
    with pytest.raises(bundle.BundleError, match="pins nothing"):
        bundle.requirements_for({"pytest"})


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_lazy_imports_in_reachable_modules_count(tmp_path):
    shared = tmp_path / "shared"
    _write(shared / "__init__.py", "")
    _write(shared / "push" / "__init__.py", "def fcm():\n    from shared.push import fcm\n")
    _write(shared / "push" / "fcm.py", "def send():\n    import firebase_admin.messaging\n")
    _write(shared / "unused.py", "import google.cloud.scheduler_v1\n")
    main_py = _write(tmp_path / "main.py", "from shared.push import fcm\nimport json\n")
    modules, external = bundle.reachable(main_py, shared_dir=shared)
    assert modules == ["shared", "shared.push", "shared.push.fcm"]
    assert external == {"firebase_admin.messaging"}


def test_a_string_naming_a_module_is_not_an_import(tmp_path):
    shared = tmp_path / "shared"
    _write(shared / "__init__.py", "")
    _write(shared / "push.py", 'PROVIDER = "shared.fcm:FcmPush"\n')
    _write(shared / "fcm.py", "import firebase_admin\n")
    main_py = _write(tmp_path / "main.py", "from shared import push\n")
    modules, external = bundle.reachable(main_py, shared_dir=shared)
    assert modules == ["shared", "shared.push"]
    assert external == set()


def test_relative_imports_inside_shared_are_followed(tmp_path):
    shared = tmp_path / "shared"
    _write(shared / "__init__.py", "")
    _write(shared / "a" / "__init__.py", "from . import b\nfrom .b import thing\n")
    _write(shared / "a" / "b.py", "import redis\nthing = 1\n")
    main_py = _write(tmp_path / "main.py", "import shared.a\n")
    modules, external = bundle.reachable(main_py, shared_dir=shared)
    assert modules == ["shared", "shared.a", "shared.a.b"]
    assert external == {"redis"}


def test_importing_a_shared_module_that_does_not_exist_fails_the_build(tmp_path):
    shared = tmp_path / "shared"
    _write(shared / "__init__.py", "")
    main_py = _write(tmp_path / "main.py", "from shared.missing.deep import x\n")
    with pytest.raises(bundle.BundleError, match=r"shared\.missing"):
        bundle.reachable(main_py, shared_dir=shared)


def test_every_group_bundle_needs_the_functions_framework():
    for group in bundle.groups():
        requirements, modules = bundle.analyse(group)
        assert any(line.startswith("functions-framework==") for line in requirements)
        assert "shared" in modules


def test_checked_in_group_requirements_equal_the_derived_ones():
    from infra import bundle

    for group in bundle.groups():
        derived = bundle.requirements_text(group, bundle.analyse(group)[0])
        checked_in = (bundle.FUNCTIONS_DIR / group / "requirements.txt").read_text()
        assert checked_in == derived, f"run `python -m infra.bundle --sync-sources` ({group} is stale)"
