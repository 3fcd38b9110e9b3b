"""Build hook: the top-level `scenarios/` and `topologies/` folders go into the wheel as package
data under `simulator/data/` (simulator.core.resources finds them there, or beside the package in
a checkout). Everything else is declared in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TOP_LEVEL_KINDS = ("scenarios", "topologies")


class BuildPyWithData(build_py):
    """build_py, then the top-level YAML folders copied into build_lib/simulator/data/."""

    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        for kind in TOP_LEVEL_KINDS:
            for src in sorted((root / kind).rglob("*.yaml")):
                dest = Path(self.build_lib, "simulator", "data", kind, src.relative_to(root / kind))
                self.mkpath(str(dest.parent))
                self.copy_file(str(src), str(dest))


setup(cmdclass={"build_py": BuildPyWithData})
