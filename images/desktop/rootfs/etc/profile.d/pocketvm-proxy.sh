# The host's proxy for every login shell (docs/network.md): written at boot
# by pocketvm-network.service from the registry's Host\Proxy values.
[ -r /etc/pocketvm/proxy.env ] && . /etc/pocketvm/proxy.env
