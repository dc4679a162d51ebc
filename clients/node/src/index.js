'use strict';

const { Client, DEFAULT_SOCKET, MESSAGE_BYTES } = require('./client');
const errors = require('./errors');
const { resolveProto } = require('./proto');

module.exports = {
  Client,
  DEFAULT_SOCKET,
  MESSAGE_BYTES,
  resolveProto,
  ModelSyncError: errors.ModelSyncError,
  InvalidArgumentError: errors.InvalidArgumentError,
  NotFoundError: errors.NotFoundError,
  AbortedError: errors.AbortedError,
  ResourceExhaustedError: errors.ResourceExhaustedError,
  DataLossError: errors.DataLossError,
  UnavailableError: errors.UnavailableError,
  DeadlineExceededError: errors.DeadlineExceededError,
  CancelledError: errors.CancelledError,
  InternalError: errors.InternalError,
  UnimplementedError: errors.UnimplementedError,
};
