"""Offline stub of buildozer's module extension: Bazel's own MODULE.bazel
use_repo()s @buildozer_binary, which only `bazel mod tidy` runs."""

def _buildozer_binary_repo_impl(ctx):
    ctx.file("BUILD.bazel", "")
    ctx.file("REPO.bazel", "")

_buildozer_binary_repo = repository_rule(implementation = _buildozer_binary_repo_impl)

def _buildozer_binary_impl(_ctx):
    _buildozer_binary_repo(name = "buildozer_binary")

buildozer_binary = module_extension(implementation = _buildozer_binary_impl)
