# quantwm dashboard on CPU: docker build -t quantwm . && docker run -p 7860:7860 quantwm
FROM python:3.11-slim
WORKDIR /app
# app.py reads HOST / PORT; quantwm.runtime keeps an env value over its own defaults and tunes glibc's
# allocator itself at start-up (mallopt), so no MALLOC_* variables are needed here.
ENV GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 HOST=0.0.0.0 PORT=7860
COPY requirements.txt .
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
EXPOSE 7860
CMD ["python", "app.py"]
