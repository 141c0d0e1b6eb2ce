#ifndef ECP_CLIBVIRT_SHIM_H
#define ECP_CLIBVIRT_SHIM_H
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#endif
