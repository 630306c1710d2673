"""Offline stub of supply-chain's package_metadata rule: accepts the attributes
gazelle's go_repository writes and provides nothing. applicable_licenses = []
breaks the cycle through REPO.bazel's default_package_metadata."""

def _package_metadata_impl(_ctx):
    return []

_package_metadata = rule(
    implementation = _package_metadata_impl,
    attrs = {
        "attributes": attr.label_list(),
        "purl": attr.string(),
    },
)

def package_metadata(name, purl = None, attributes = [], visibility = None, **kwargs):
    _package_metadata(
        name = name,
        purl = purl,
        attributes = attributes,
        visibility = visibility,
        applicable_licenses = [],
    )
