/* Mirrors SCSIControllerDriverKit's umbrella <SCSIControllerDriverKit/SCSIControllerDriverKit.h>. */
#pragma once
#include <SCSIControllerDriverKit/SCSIDefinitions.h>
#include <SCSIControllerDriverKit/IOUserSCSIParallelInterfaceController.h>
