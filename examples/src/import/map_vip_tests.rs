//! The reading of pgpool's `if_up_cmd`.

use super::*;

fn parsed(command: &str) -> Option<(Option<u8>, String)> {
    parse_ip_add(command).map(|p| (p.prefix, p.interface))
}

#[test]
fn the_usual_ip_addr_add_is_read_with_or_without_sudo_path_and_label() {
    let ens33 = Some((Some(24), "ens33".to_owned()));
    for command in [
        "ip addr add $_IP_$/24 dev ens33 label ens33:0",
        "ip addr add $_IP_$/24 dev ens33",
        "/sbin/ip addr add $_IP_$/24 dev ens33 label ens33:0",
        "sudo ip addr add $_IP_$/24 dev ens33",
        "/usr/bin/sudo /sbin/ip addr add $_IP_$/24 dev ens33 label ens33:0",
        "sudo -n /usr/sbin/ip -4 address add $_IP_$/24 dev ens33",
        "ip a add $_IP_$/24 brd + dev ens33 scope global",
        "ip addr add dev ens33 local $_IP_$/24",
    ] {
        assert_eq!(parsed(command), ens33, "{command}");
    }
    // No prefix length: the caller assumes one and says so.
    assert_eq!(
        parsed("ip addr add $_IP_$ dev eth1"),
        Some((None, "eth1".to_owned()))
    );
}

#[test]
fn any_other_command_is_not_the_usual_form() {
    for command in [
        // Other programs, or more than ip does.
        "ifconfig eth0:0 inet $_IP_$ netmask 255.255.255.0",
        "/etc/pgpool-II/vip_up.sh $_IP_$",
        "ip addr add $_IP_$/24 dev eth0 && arping -U $_IP_$ -I eth0",
        "ip addr add $_IP_$/24 dev eth0; touch /tmp/vip",
        "ip addr add $(cat /etc/vip)/24 dev eth0",
        "sudo -u root ip addr add $_IP_$/24 dev eth0",
        // Other ip commands, or ones this reading does not know.
        "ip addr del $_IP_$/24 dev eth0",
        "ip route add $_IP_$/32 dev eth0",
        "ip addr add $_IP_$/24 dev eth0 valid_lft 10",
        "ip addr add 10.0.0.9/24 dev eth0",
        "ip addr add $_IP_$/x dev eth0",
        "ip addr add $_IP_$/24",
        "ip addr add $_IP_$/24 dev",
        "ip addr add $_IP_$/24 dev a-very-long-interface-name",
        "ip",
        "",
    ] {
        assert_eq!(parsed(command), None, "{command}");
    }
}
