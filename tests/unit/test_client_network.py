"""The subject of a per-IP limit: an IPv4 address alone, an IPv6 address by its /64."""

from __future__ import annotations

import pytest

from shared.ratelimit import client_network


@pytest.mark.parametrize(
    "address,subject",
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("unknown", "unknown"),
    ],
)
def test_each_address_maps_to_the_client_that_owns_it(address, subject):
    assert client_network(address) == subject


def test_neighbouring_ipv4_addresses_stay_apart_and_one_64_is_one_client():
    assert client_network("198.51.100.7") != client_network("198.51.100.8")
    assert client_network("2001:db8:0:1::1") == client_network("2001:db8:0:1:ffff:ffff:ffff:ffff")
