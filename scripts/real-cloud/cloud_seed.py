"""Seed the loopback cloud (run by openstack.sh with Debian's python3 and its openstacksdk).

`services CLOUDS_YAML NEUTRON NOVA`: the service project, the neutron and nova service users
(password from $SERVICE_PW) and the catalog entries, so that the APIs validate tokens and the
clients find them.
`resources CLOUDS_YAML`: what the stacks expect to exist already in a cloud: the government
information network (external) and the fj.* flavors.
"""

from __future__ import annotations

import os
import sys

import openstack

FLAVORS = (("fj.small", 2, 4096), ("fj.medium", 4, 8192), ("fj.large", 8, 16384), ("fj.xlarge", 16, 32768))


def connect(clouds_yaml: str) -> openstack.connection.Connection:
    os.environ["OS_CLIENT_CONFIG_FILE"] = clouds_yaml
    return openstack.connect(cloud="loopback")


def services(clouds_yaml: str, neutron: str, nova: str) -> None:
    ident = connect(clouds_yaml).identity
    password = os.environ["SERVICE_PW"]
    project = ident.find_project("service") or ident.create_project(name="service", domain_id="default")
    admin = ident.find_role("admin")
    for name, kind, url in (("neutron", "network", f"http://{neutron}"),
                            ("nova", "compute", f"http://{nova}/v2.1")):
        user = ident.create_user(name=name, password=password, domain_id="default", default_project_id=project.id)
        ident.assign_project_role_to_user(project, user, admin)
        service = ident.create_service(name=name, type=kind)
        for interface in ("public", "internal", "admin"):
            ident.create_endpoint(service_id=service.id, interface=interface, url=url, region_id="RegionOne")


def resources(clouds_yaml: str) -> None:
    conn = connect(clouds_yaml)
    net = conn.network.create_network(name="gov-information-network", is_router_external=True,
                                      provider_network_type="flat", provider_physical_network="govnet")
    conn.network.create_subnet(network_id=net.id, name="gov-information-subnet", ip_version=4,
                               cidr="10.10.0.0/16", enable_dhcp=False)
    for name, vcpus, ram in FLAVORS:
        conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=20)
    print("seeded:", net.id, [f.name for f in conn.compute.flavors()])


if __name__ == "__main__":
    if sys.argv[1] == "services":
        services(*sys.argv[2:5])
    else:
        resources(sys.argv[2])
