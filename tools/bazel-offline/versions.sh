# Versions the offline bootstrap pins. tools/bazel sources this file and
# checks what it gets against it; change a version here and in MODULE.bazel,
# WORKSPACE and tools/README.md together.
DEBIAN_SUITE=forky                 # a suite that carries bazel-bootstrap 7.x
BAZEL_VERSION=7.7.1                # Debian's bazel-bootstrap in $DEBIAN_SUITE
RULES_GO_VERSION=0.60.0            # newest that fits Debian's bazel_features 1.11.0
GAZELLE_VERSION=0.47.0             # newest whose proxy zip builds its tools
RULES_SHELL_DEBIAN_VERSION=0.4.0   # Debian's bazel-rules-shell
BAZEL_FEATURES_DEBIAN_VERSION=1.11.0 # Debian's bazel-features (rules_go > 0.60 needs newer)
