"""What each OpenAI-compatible provider's documentation says, written down independently of the
manifests so that the tests compare the two (a manifest typo fails a test).

``base_url`` is what the provider's docs / official SDK call the base URL: the client appends
``/chat/completions`` (Azure: ``/openai/deployments/{deployment}/chat/completions``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Expect:
    provider: str
    base_url: str
    key_env: tuple[str, ...]
    model: str = "test-model"
    base_url_env: str | None = None
    auth_header: str = "authorization"
    auth_prefix: str = "Bearer "
    stream_options: bool = True  # does the request carry stream_options.include_usage?
    optional_key: bool = False
    usage: tuple[int, int, int] = (9, 4, 13)  # (prompt, completion incl. reasoning, total) of the fixtures
    thinking: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    stream_usage: bool = True  # does the documented stream carry usage (with or without stream_options)?
    headers: dict[str, str] = field(default_factory=dict)  # fixed extra headers the docs require
    max_stop: int | None = None  # documented limit on stop sequences, when narrower than none

    @property
    def prefix(self) -> str:
        """The path part of the documented base URL (``/openai/v1`` for Groq)."""
        return urlsplit(self.base_url).path.rstrip("/")

    @property
    def chat_path(self) -> str:
        return self.prefix + "/chat/completions"

    def __str__(self) -> str:
        return self.provider


PROVIDERS = [
    Expect("azure", "https://my-resource.openai.azure.com", ("AZURE_OPENAI_API_KEY",), model="my-gpt4o",
           auth_header="api-key", auth_prefix="",
           extra_env={"AZURE_OPENAI_ENDPOINT": "https://my-resource.openai.azure.com/"}),
    Expect("deepseek", "https://api.deepseek.com", ("DEEPSEEK_API_KEY",), model="deepseek-reasoner",
           base_url_env="DEEPSEEK_BASE_URL", usage=(9, 14, 23), thinking="用户在打招呼。"),
    Expect("groq", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",), model="llama-3.3-70b-versatile",
           base_url_env="GROQ_BASE_URL"),
    Expect("mistral", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), model="mistral-small-latest",
           base_url_env="MISTRAL_BASE_URL", stream_options=False),
    Expect("xai", "https://api.x.ai/v1", ("XAI_API_KEY",), model="grok-3-mini", base_url_env="XAI_BASE_URL",
           usage=(9, 14, 23), thinking="The user greets me."),
    Expect("together", "https://api.together.xyz/v1", ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY"),
           model="meta-llama/Llama-3.3-70B-Instruct-Turbo", base_url_env="TOGETHER_BASE_URL"),
    Expect("openrouter", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), model="anthropic/claude-3.5-sonnet",
           base_url_env="OPENROUTER_BASE_URL"),
    Expect("fireworks", "https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY",),
           model="accounts/fireworks/models/llama-v3p1-8b-instruct", base_url_env="FIREWORKS_BASE_URL"),
    Expect("perplexity", "https://api.perplexity.ai", ("PERPLEXITY_API_KEY", "PPLX_API_KEY"), model="sonar",
           base_url_env="PERPLEXITY_BASE_URL", stream_options=False),
    Expect("cerebras", "https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",), model="llama3.1-8b",
           base_url_env="CEREBRAS_BASE_URL"),
    Expect("deepinfra", "https://api.deepinfra.com/v1/openai", ("DEEPINFRA_API_KEY", "DEEPINFRA_TOKEN"),
           model="meta-llama/Meta-Llama-3.1-8B-Instruct", base_url_env="DEEPINFRA_BASE_URL"),
    Expect("nvidia", "https://integrate.api.nvidia.com/v1", ("NVIDIA_API_KEY",), model="meta/llama-3.1-8b-instruct",
           base_url_env="NVIDIA_BASE_URL"),
    Expect("sambanova", "https://api.sambanova.ai/v1", ("SAMBANOVA_API_KEY",), model="Meta-Llama-3.3-70B-Instruct",
           base_url_env="SAMBANOVA_BASE_URL"),
    Expect("dashscope", "https://dashscope.aliyuncs.com/compatible-mode/v1", ("DASHSCOPE_API_KEY",), model="qwen-plus",
           base_url_env="DASHSCOPE_BASE_URL"),
    Expect("zhipu", "https://open.bigmodel.cn/api/paas/v4", ("ZHIPUAI_API_KEY", "ZHIPU_API_KEY"), model="glm-4-flash",
           base_url_env="ZHIPUAI_BASE_URL", stream_options=False),
    Expect("moonshot", "https://api.moonshot.cn/v1", ("MOONSHOT_API_KEY",), model="moonshot-v1-8k",
           base_url_env="MOONSHOT_BASE_URL", stream_options=False),
    Expect("doubao", "https://ark.cn-beijing.volces.com/api/v3", ("ARK_API_KEY",), model="doubao-seed-1-6-250615",
           base_url_env="ARK_BASE_URL"),
    Expect("baichuan", "https://api.baichuan-ai.com/v1", ("BAICHUAN_API_KEY",), model="Baichuan4-Turbo",
           base_url_env="BAICHUAN_BASE_URL", stream_options=False),
    Expect("minimax", "https://api.minimax.io/v1", ("MINIMAX_API_KEY",), model="MiniMax-M2",
           base_url_env="MINIMAX_BASE_URL", stream_options=False),
    Expect("yi", "https://api.lingyiwanwu.com/v1", ("YI_API_KEY",), model="yi-lightning", base_url_env="YI_BASE_URL",
           stream_options=False),
    Expect("siliconflow", "https://api.siliconflow.cn/v1", ("SILICONFLOW_API_KEY",), model="Qwen/Qwen2.5-7B-Instruct",
           base_url_env="SILICONFLOW_BASE_URL", stream_options=False),
    Expect("lmstudio", "http://localhost:1234/v1", ("LMSTUDIO_API_KEY", "LM_STUDIO_API_KEY"), model="qwen2.5-7b-instruct",
           base_url_env="LMSTUDIO_BASE_URL", optional_key=True),
    Expect("vllm", "http://localhost:8000/v1", ("VLLM_API_KEY",), model="Qwen/Qwen2.5-7B-Instruct",
           base_url_env="VLLM_BASE_URL", optional_key=True),
    Expect("llamacpp", "http://localhost:8080/v1", ("LLAMA_API_KEY",), model="gemma-3-270m",
           base_url_env="LLAMACPP_BASE_URL", optional_key=True),
    # Hugging Face router: the chat-completion task page lists stream_options.include_usage and
    # "Up to 4 sequences" for stop; the quick start reads HF_TOKEN.
    Expect("huggingface", "https://router.huggingface.co/v1",
           ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "HUGGINGFACE_API_KEY"),
           model="deepseek-ai/DeepSeek-V3-0324:novita", base_url_env="HUGGINGFACE_BASE_URL", max_stop=4),
    # GitHub Models: POST {base}/chat/completions with a PAT (models: read); the quick start sends
    # X-GitHub-Api-Version. GITHUB_BASE_URL is avoided: other GitHub tooling uses it for the REST API.
    Expect("github", "https://models.github.ai/inference", ("GITHUB_TOKEN", "GH_TOKEN"), model="openai/gpt-4.1",
           base_url_env="GITHUB_MODELS_BASE_URL", headers={"X-GitHub-Api-Version": "2022-11-28"}),
    # Hyperbolic documents neither stream_options nor usage in streams.
    Expect("hyperbolic", "https://api.hyperbolic.xyz/v1", ("HYPERBOLIC_API_KEY",),
           model="meta-llama/Meta-Llama-3-70B-Instruct", base_url_env="HYPERBOLIC_BASE_URL",
           stream_options=False, stream_usage=False),
    # Novita: the LLM guide's OpenAI client uses base_url https://api.novita.ai/openai.
    Expect("novita", "https://api.novita.ai/openai", ("NOVITA_API_KEY",), model="meta-llama/llama-3.1-8b-instruct",
           base_url_env="NOVITA_BASE_URL"),
    Expect("nebius", "https://api.tokenfactory.nebius.com/v1", ("NEBIUS_API_KEY",),
           model="meta-llama/Meta-Llama-3.1-70B-Instruct", base_url_env="NEBIUS_BASE_URL"),
    Expect("hunyuan", "https://api.hunyuan.cloud.tencent.com/v1", ("HUNYUAN_API_KEY",), model="hunyuan-turbos-latest",
           base_url_env="HUNYUAN_BASE_URL", stream_options=False, stream_usage=False),
    # StepFun: every stream chunk carries cumulative usage (no stream_options needed); docs use STEP_API_KEY.
    Expect("stepfun", "https://api.stepfun.com/v1", ("STEP_API_KEY", "STEPFUN_API_KEY"), model="step-3.5-flash",
           base_url_env="STEPFUN_BASE_URL", stream_options=False),
    Expect("qianfan", "https://qianfan.baidubce.com/v2", ("QIANFAN_API_KEY",), model="ernie-4.0-turbo-8k",
           base_url_env="QIANFAN_BASE_URL", stream_options=False, stream_usage=False),
    Expect("vercel", "https://ai-gateway.vercel.sh/v1",
           ("AI_GATEWAY_API_KEY", "VERCEL_AI_GATEWAY_API_KEY", "VERCEL_OIDC_TOKEN"),
           model="anthropic/claude-sonnet-4", base_url_env="VERCEL_AI_GATEWAY_BASE_URL"),
]

BY_ID = {expect.provider: expect for expect in PROVIDERS}
# llama.cpp's fixtures are real captures with their own test module (test_llamacpp.py).
WITH_DOC_FIXTURES = [expect for expect in PROVIDERS if expect.provider != "llamacpp"]


def request_path(expect: Expect) -> str:
    """The path the provider receives when the client's base_url is the server root + prefix."""
    if expect.provider == "azure":
        return f"/openai/deployments/{expect.model}/chat/completions"
    return expect.chat_path
