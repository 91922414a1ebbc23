#!/bin/bash
# The main job. It grows with the project: by the end it builds an OS tree, commits it
# with ostree, deploys it signed with our kernel-install plugin and boots it under qemu.
set -euo pipefail
echo "demo: nothing to show yet"
