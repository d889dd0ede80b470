/**
 * @file custos.h
 * @brief libcustos: give a medical device a cryptographic identity and keep it for life.
 */
#ifndef CUSTOS_CUSTOS_H
#define CUSTOS_CUSTOS_H

#include "custos/error.h"
#include "custos/types.h"
#include "custos/port.h"
#include "custos/package.h"
#include "custos/connect.h"
#include "custos/device.h"

#define CUSTOS_VERSION_MAJOR 0
#define CUSTOS_VERSION_MINOR 1
#define CUSTOS_VERSION_PATCH 0
#define CUSTOS_VERSION_STRING "0.1.0"

#endif
