# src/backend-cuda
