"""Only the package list lives here; everything else is in pyproject.toml.

pyproject.toml maps the repo's folders onto the ``crm_invoices`` namespace (``sources/`` is installed as
``crm_invoices.sources``); setuptools' ``packages.find`` cannot name packages under a mapping, so they are
walked here: a new CRM's folders are picked up without editing any list."""

from pathlib import Path

from setuptools import setup

ROOTS = ("sources", "pipelines", "sandbox")


def packages() -> list[str]:
    found = ["crm_invoices.models"]  # the dbt project: data only
    for root in ROOTS:
        for init in sorted(Path(root).rglob("__init__.py")):
            found.append("crm_invoices." + ".".join(init.parent.parts))
    return found


setup(packages=packages())
