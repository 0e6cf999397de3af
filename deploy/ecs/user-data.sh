#!/usr/bin/env bash
# EC2 user-data of an ECS container instance that runs eipd as a daemon task
# (docs/install.md, Path 2 by hand), after deploy/haproxy/user-data.sh: the
# ECS agent's settings, as the example stack writes them. The agent of the
# ECS-optimized AMI starts after the user data, so it reads them at its first
# start.
set -euo pipefail

# --- settings ---
# The cluster of deploy/ecs/service.json.
ECS_CLUSTER_NAME="proxy"
# The eipd:group of this group; the daemon service's placement constraint
# matches the instance attribute eipd-group.
EIPD_GROUP="proxy-prod"
# --- end of settings ---

# EIPD_INSTALL_ROOT (environment, not a setting) writes under another
# directory than /, for tests (deploy/ecs_test.go).
root=${EIPD_INSTALL_ROOT:-}
install -d -m 0755 "$root/etc/ecs"
# The last two lines give a task with networkMode host its task role;
# without them it silently gets the instance profile's credentials.
cat >>"$root/etc/ecs/ecs.config" <<CONF
ECS_CLUSTER=$ECS_CLUSTER_NAME
ECS_ENABLE_TASK_IAM_ROLE=true
ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST=true
ECS_INSTANCE_ATTRIBUTES={"eipd-group":"$EIPD_GROUP"}
CONF
