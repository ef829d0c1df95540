"""The one exceptions module of mlplan.

Every error the core raises is an :class:`MlplanError`. The CLI turns each into one clear line and the exit
code of its branch, so a user's CI can tell bad input from an impossible request from a broken environment::

    MlplanError                      any mlplan failure                      (exit 1)
    ├── InputError                   the user's input is wrong               (exit 2)
    │   ├── SpecError                a spec YAML / field / value is invalid
    │   ├── ModelConfigError         a preset is unknown or a config.json cannot be read
    │   └── CatalogError             a catalog row or overlay file is invalid, or an id is unknown
    ├── InfeasibleError              no plan meets every constraint          (exit 3)
    ├── EnvironmentProblem           the machine or account is not ready     (exit 4)
    │   ├── MissingDependency        an optional extra / CLI is not installed
    │   ├── CredentialsError         cloud credentials are missing or refused
    │   └── ClusterUnreachable       the Kubernetes API server cannot be reached
    └── DeployError                  a deploy / status / destroy step failed (exit 5)
        └── ArtifactError            an emitted plan folder is missing or corrupt

Messages follow one shape: what is wrong, the bad value, and ``To fix: ...``.
"""

from __future__ import annotations


class MlplanError(Exception):
    """Base class of every error mlplan raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.fix:
            text += f". To fix: {' '.join(self.fix.split())}"
        return text


class InputError(MlplanError):
    exit_code = 2


class SpecError(InputError):
    pass


class ModelConfigError(InputError):
    pass


class CatalogError(InputError):
    pass


class InfeasibleError(MlplanError):
    """No candidate satisfies every constraint. ``binding`` lists each binding constraint with its closest miss."""

    exit_code = 3

    def __init__(self, message: str, *, binding: list[str] | None = None, fix: str | None = None) -> None:
        self.binding = list(binding or [])
        super().__init__(message, fix=fix)


class EnvironmentProblem(MlplanError):
    exit_code = 4


class MissingDependency(EnvironmentProblem):
    pass


class CredentialsError(EnvironmentProblem):
    pass


class ClusterUnreachable(EnvironmentProblem):
    pass


class DeployError(MlplanError):
    exit_code = 5


class ArtifactError(DeployError):
    pass


EXIT_CODES = {
    0: "success",
    1: "unexpected mlplan error",
    2: "bad input (spec, model config, catalog, CLI arguments)",
    3: "no feasible plan",
    4: "environment: missing dependency, credentials or unreachable cluster",
    5: "deploy, status or destroy failed",
}
