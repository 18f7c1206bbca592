/* Mirrors DriverKit's umbrella <DriverKit/DriverKit.h>. */
#pragma once
#include <DriverKit/IOReturn.h>
#include <DriverKit/IOTypes.h>
#include <DriverKit/IOLib.h>
#include <DriverKit/OSObject.h>
#include <DriverKit/OSCollections.h>
#include <DriverKit/OSAction.h>
#include <DriverKit/IODispatchQueue.h>
#include <DriverKit/IOService.h>
#include <DriverKit/IOMemoryDescriptor.h>
#include <DriverKit/IOMemoryMap.h>
#include <DriverKit/IOBufferMemoryDescriptor.h>
#include <DriverKit/IODMACommand.h>
#include <DriverKit/IOUserClient.h>
#include <os/log.h>
