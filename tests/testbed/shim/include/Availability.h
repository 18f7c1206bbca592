/* Mirrors <Availability.h>: nothing the dext uses needs availability macros on the host. */
#pragma once
