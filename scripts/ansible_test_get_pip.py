"""Stands in for pip's get-pip.py, which ansible-test fetches from a host that only PyPI-reaching
machines cannot reach, to bootstrap pip in each sanity test's virtual environment.

ansible-test runs it as ``python get_pip_<version>.py [pip options] pip==<version> --no-setuptools
--no-wheel``; like get-pip.py it installs exactly the named pip from the package index, starting
from the pip that the interpreter bundles (ensurepip). scripts/sanity.sh places it in
ansible-test's cache (~/.ansible/test/cache/get_pip_<version>.py) when it is missing there.
"""

import subprocess
import sys

# get-pip.py's own flags; pip install does not know them.
OWN_FLAGS = {"--no-setuptools", "--no-wheel"}


def main() -> None:
    args = [a for a in sys.argv[1:] if a not in OWN_FLAGS]
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "pip", "install", "--upgrade", "--force-reinstall", *args], check=True)


if __name__ == "__main__":
    main()
