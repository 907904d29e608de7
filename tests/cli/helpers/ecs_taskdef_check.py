#!/usr/bin/env python3
"""ecs_taskdef_check.py TASKDEF.json [CPU_COUNT]: checks an ECS task definition against the fields
AWS's ECS API reference documents for RegisterTaskDefinition, ContainerDefinition,
LinuxParameters and Device (names, types, enumerations, required keys), then what an enclave
needs: /dev/nitro_enclaves passed in, no privileged mode, cpu units for CPU_COUNT vCPUs, and a
stop timeout above enclaver run's 30 s bound. Prints one line per problem, naming the field; exits
1 when there is any."""
import json
import re
import sys

STR, INT, BOOL = str, int, bool
NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")

# RegisterTaskDefinition's request fields (a subset is enough: unknown keys are reported).
TASK = {
    "family": STR, "taskRoleArn": STR, "executionRoleArn": STR, "networkMode": STR,
    "containerDefinitions": list, "volumes": list, "placementConstraints": list,
    "requiresCompatibilities": list, "cpu": STR, "memory": STR, "tags": list, "pidMode": STR,
    "ipcMode": STR, "proxyConfiguration": dict, "inferenceAccelerators": list,
    "ephemeralStorage": dict, "runtimePlatform": dict, "enableFaultInjection": BOOL,
}
TASK_REQUIRED = ["family", "containerDefinitions"]
CONTAINER = {
    "name": STR, "image": STR, "repositoryCredentials": dict, "cpu": INT, "memory": INT,
    "memoryReservation": INT, "links": list, "portMappings": list, "essential": BOOL,
    "restartPolicy": dict, "entryPoint": list, "command": list, "environment": list,
    "environmentFiles": list, "mountPoints": list, "volumesFrom": list, "linuxParameters": dict,
    "secrets": list, "dependsOn": list, "startTimeout": INT, "stopTimeout": INT,
    "versionConsistency": STR, "hostname": STR, "user": STR, "workingDirectory": STR,
    "disableNetworking": BOOL, "privileged": BOOL, "readonlyRootFilesystem": BOOL,
    "dnsServers": list, "dnsSearchDomains": list, "extraHosts": list,
    "dockerSecurityOptions": list, "interactive": BOOL, "pseudoTerminal": BOOL,
    "dockerLabels": dict, "ulimits": list, "logConfiguration": dict, "healthCheck": dict,
    "systemControls": list, "resourceRequirements": list, "firelensConfiguration": dict,
    "credentialSpecs": list,
}
CONTAINER_REQUIRED = ["name", "image"]
LINUX = {
    "capabilities": dict, "devices": list, "initProcessEnabled": BOOL, "sharedMemorySize": INT,
    "tmpfs": list, "maxSwap": INT, "swappiness": INT,
}
DEVICE = {"hostPath": STR, "containerPath": STR, "permissions": list}
PORT = {"containerPort": INT, "hostPort": INT, "protocol": STR, "name": STR, "appProtocol": STR,
        "containerPortRange": STR}
ENUMS = {
    "networkMode": {"bridge", "host", "awsvpc", "none"},
    "requiresCompatibilities": {"EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"},
    "permissions": {"read", "write", "mknod"},
    "protocol": {"tcp", "udp"},
}

problems = []


def typed(obj, schema, where, required=()):
    if not isinstance(obj, dict):
        problems.append(f"{where}: expected an object")
        return False
    for k in required:
        if k not in obj:
            problems.append(f"{where}.{k}: required and missing")
    for k, v in obj.items():
        if k not in schema:
            problems.append(f"{where}.{k}: not a documented field")
            continue
        want = schema[k]
        # JSON true/false are ints to Python: an integer field must not be a boolean.
        if not isinstance(v, want) or (want is INT and isinstance(v, bool)):
            problems.append(f"{where}.{k}: expected {want.__name__}, got {type(v).__name__}")
    return True


def main():
    path = sys.argv[1]
    cpu_count = int(sys.argv[2]) if len(sys.argv) > 2 else None
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{path}: {e}")
        return 1
    if not typed(doc, TASK, "task", TASK_REQUIRED):
        return report()
    if isinstance(doc.get("family"), str) and not NAME.match(doc["family"]):
        problems.append("task.family: up to 255 letters, digits, hyphens, underscores")
    if doc.get("networkMode") not in ENUMS["networkMode"] | {None}:
        problems.append(f"task.networkMode: {doc['networkMode']!r} is not one of {sorted(ENUMS['networkMode'])}")
    for c in doc.get("requiresCompatibilities") or []:
        if c not in ENUMS["requiresCompatibilities"]:
            problems.append(f"task.requiresCompatibilities: {c!r} unknown")
    containers = doc.get("containerDefinitions")
    if not isinstance(containers, list) or not containers:
        problems.append("task.containerDefinitions: at least one container")
        return report()
    for i, c in enumerate(containers):
        where = f"task.containerDefinitions[{i}]"
        if not typed(c, CONTAINER, where, CONTAINER_REQUIRED):
            continue
        if isinstance(c.get("name"), str) and not NAME.match(c["name"]):
            problems.append(f"{where}.name: up to 255 letters, digits, hyphens, underscores")
        if isinstance(c.get("memory"), int) and c["memory"] < 6:
            problems.append(f"{where}.memory: at least 6 MiB")
        for j, p in enumerate(c.get("portMappings") or []):
            typed(p, PORT, f"{where}.portMappings[{j}]")
            if isinstance(p, dict) and p.get("protocol", "tcp") not in ENUMS["protocol"]:
                problems.append(f"{where}.portMappings[{j}].protocol: tcp or udp")
        for k in ("command", "entryPoint", "dockerSecurityOptions"):
            if any(not isinstance(s, str) for s in c.get(k) or []):
                problems.append(f"{where}.{k}: strings only")
        lp = c.get("linuxParameters") or {}
        typed(lp, LINUX, f"{where}.linuxParameters")
        devices = lp.get("devices") or [] if isinstance(lp, dict) else []
        for j, d in enumerate(devices):
            dw = f"{where}.linuxParameters.devices[{j}]"
            typed(d, DEVICE, dw, ["hostPath"])
            for perm in (d.get("permissions") or []) if isinstance(d, dict) else []:
                if perm not in ENUMS["permissions"]:
                    problems.append(f"{dw}.permissions: {perm!r} is not read, write or mknod")
        # What an enclave needs.
        if not any(isinstance(d, dict) and d.get("hostPath") == "/dev/nitro_enclaves" and
                   d.get("containerPath", d.get("hostPath")) == "/dev/nitro_enclaves" for d in devices):
            problems.append(f"{where}.linuxParameters.devices: /dev/nitro_enclaves is not passed in")
        if c.get("privileged"):
            problems.append(f"{where}.privileged: an enclave needs no privileged mode")
        if cpu_count is not None and c.get("cpu") != cpu_count * 1024:
            problems.append(f"{where}.cpu: {c.get('cpu')!r} units, the manifest's cpu_count {cpu_count} is "
                            f"{cpu_count * 1024}")
        if not isinstance(c.get("stopTimeout"), int) or c["stopTimeout"] <= 30:
            problems.append(f"{where}.stopTimeout: above 30 s (enclaver run's bound after SIGTERM)")
    return report()


def report():
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
