/* Mirrors PCIDriverKit's umbrella <PCIDriverKit/PCIDriverKit.h>. */
#pragma once
#include <PCIDriverKit/IOPCIDevice.h>
