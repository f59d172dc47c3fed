"""`python -m infra {deploy,bundle,bootstrap-admin} ...`: the deploy tooling's entry point."""

from __future__ import annotations

import sys

USAGE = "usage: python -m infra {deploy,bundle,bootstrap-admin} [options]  (--help after the command for its options)"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("deploy", "bundle", "bootstrap-admin"):
        print(USAGE, file=sys.stderr)
        return 2
    if argv[0] == "deploy":
        from infra import deploy

        return deploy.main(argv[1:])
    if argv[0] == "bootstrap-admin":
        from infra import bootstrap

        return bootstrap.main(argv[1:])
    from infra import bundle

    return bundle.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
